"""Holds the leases of the shards assigned to this worker, and nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from hourglass_core.leases.base import Lease, Leases

log = logging.getLogger(__name__)

# A lease is trusted locally only until this fraction of its ttl has passed since it was last
# confirmed, so clock drift and the renewal round trip cannot let two owners act at once.
SAFE_FRACTION = 0.8


def shard_key(shard: int) -> str:
    return f"shard:{shard}"


@dataclass(slots=True)
class Held:
    lease: Lease
    confirmed_at: float  # loop time of the last successful acquire or renew


class ShardKeeper:
    """Leases the assigned shards, renews them, and gives up those no longer assigned.

    `on_gained(shard, lease)` and `on_lost(shard, graceful)` are called from the keeper's loop;
    graceful means the lease was released on purpose (unassigned, or shutting down) rather
    than lost (expired, or taken by a newer owner).
    """

    def __init__(
        self,
        leases: Leases,
        worker_id: str,
        ttl: timedelta,
        on_gained: Callable[[int, Lease], None],
        on_lost: Callable[[int, bool], None],
    ) -> None:
        self._leases = leases
        self._worker_id = worker_id
        self._ttl = ttl
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._desired: set[int] = set()
        self._held: dict[int, Held] = {}
        self._changed = asyncio.Event()

    def assign(self, shards: set[int]) -> None:
        self._desired = set(shards)
        self._changed.set()

    def lease(self, shard: int) -> Lease | None:
        """The shard's lease while it is safely ours, else None."""
        held = self._held.get(shard)
        if held is None:
            return None
        age = asyncio.get_running_loop().time() - held.confirmed_at
        return held.lease if age < self._ttl.total_seconds() * SAFE_FRACTION else None

    @property
    def held(self) -> set[int]:
        return set(self._held)

    async def run(self) -> None:
        """Forever: converge the held leases on the assignment."""
        period = self._ttl.total_seconds() / 4
        try:
            while True:
                try:
                    await self._step()
                except Exception as error:  # noqa: BLE001 - Redis may be away for a while
                    log.warning("shard leases: %s", error)
                    self._drop_expired()
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), period)
                except TimeoutError:
                    pass
        finally:
            await asyncio.shield(self.release_all())

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        for shard in sorted(set(self._held) - self._desired):
            held = self._held.pop(shard)
            self._on_lost(shard, True)
            await self._leases.release(held.lease)
        renewals = [(s, h) for s, h in self._held.items()]
        results = await asyncio.gather(*(self._leases.renew(h.lease) for _, h in renewals))
        now = loop.time()
        for (shard, held), ok in zip(renewals, results):
            if ok:
                held.confirmed_at = now
            else:
                log.warning("lease of shard %d lost", shard)
                del self._held[shard]
                self._on_lost(shard, False)
        wanted = sorted(self._desired - set(self._held))
        leases = await asyncio.gather(
            *(self._leases.acquire(shard_key(s), self._worker_id, self._ttl) for s in wanted)
        )
        now = loop.time()
        for shard, lease in zip(wanted, leases):
            if lease is not None:
                self._held[shard] = Held(lease, now)
                self._on_gained(shard, lease)

    def _drop_expired(self) -> None:
        for shard in [s for s in self._held if self.lease(s) is None]:
            del self._held[shard]
            self._on_lost(shard, False)

    async def release_all(self) -> None:
        held, self._held = self._held, {}
        for shard in held:
            self._on_lost(shard, True)
        await asyncio.gather(
            *(self._leases.release(h.lease) for h in held.values()), return_exceptions=True
        )
