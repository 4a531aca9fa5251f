"""Whether a claimed fire may run here, now: the fencing of a worker against itself.

A fire claimed under a shard lease runs only while that very lease is held and confirmed (a
lease lost and taken again has a new token: what was claimed under the old one is not run), or
after the lease was released on purpose, while this worker has stayed visibly alive since (its
claims are then left to it by the shard's new owner). A worker that was frozen past its lease
or its heartbeat timeout thus runs nothing it no longer owns: the new owner takes it over.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from hourglass_worker.shards import ShardKeeper

# A fire claimed before its shard was released waits at most this long to run there.
RELEASED_KEPT_S = 600.0


class Fence:
    def __init__(self, keeper: ShardKeeper, beating_since: Callable[[], float]) -> None:
        self._keeper = keeper
        self._beating_since = beating_since
        self.lives: dict[int, int] = {}  # shard -> token of the lease held now (its "life")
        self.since: dict[int, datetime] = {}  # shard -> when its life began
        self._released: dict[int, dict[int, float]] = defaultdict(dict)  # shard -> token -> when

    def gained(self, shard: int, token: int) -> None:
        self.lives[shard] = token
        self.since[shard] = datetime.now(UTC)

    def lost(self, shard: int, graceful: bool) -> None:
        token = self.lives.pop(shard, None)
        if graceful and token is not None:
            now = asyncio.get_running_loop().time()
            released = self._released[shard]
            for old in [t for t, at in released.items() if now - at > RELEASED_KEPT_S]:
                del released[old]
            released[token] = now

    def may_run(self, shard: int, token: int) -> bool | None:
        """True: run now. None: the lease is not confirmed right now; ask again shortly.
        False: never (the shard's new owner takes the claim over)."""
        if self.lives.get(shard) == token:
            return True if self._keeper.lease(shard) is not None else None
        released_at = self._released.get(shard, {}).get(token)
        if released_at is not None:
            # If our heartbeats paused since we let the shard go, we may have been declared
            # dead meanwhile and the claim taken over: then we must not run it.
            return self._beating_since() <= released_at
        return False
