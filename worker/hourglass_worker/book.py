"""Per-shard bookkeeping of the fires a worker has taken: what it has seen, what is not yet
fully handled, and so how far each shard's checkpoint may move.

Each ownership of a shard is one *life*, named by the lease token it was taken with. A fire
taken in one life and finished after the shard was lost and taken again must not clear the
new life's entry for the same fire (the new life may still be watching it), hence `life`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from hourglass_core.models import Fire
from hourglass_worker.timer import FireKey, fire_key

EPSILON = timedelta(microseconds=1)


class ShardBook:
    def __init__(self) -> None:
        # Taken and not yet passed by the shard's cursor: a re-read of them is ignored.
        self._seen: dict[int, dict[FireKey, datetime]] = defaultdict(dict)
        # Taken and not yet fully handled (prepared, waiting, running or watched): due, life.
        self._pending: dict[int, dict[FireKey, tuple[datetime, int]]] = defaultdict(dict)

    def open(self, shard: int) -> None:
        """A new life of the shard begins: it is read again from its checkpoint, and what an
        earlier life took is found there again."""
        self.drop_shard(shard)

    def take(self, fire: Fire, life: int = 0) -> bool:
        """True the first time a fire is offered (until the cursor passes it)."""
        key = fire_key(fire)
        seen = self._seen[fire.shard]
        if key in seen:
            return False
        seen[key] = fire.due
        self._pending[fire.shard][key] = (fire.due, life)
        return True

    def has_seen(self, fire: Fire) -> bool:
        return fire_key(fire) in self._seen.get(fire.shard, {})

    def pending_total(self) -> int:
        """Fires taken and not yet fully handled, over every shard."""
        return sum(len(p) for p in self._pending.values())

    def handled(self, fire: Fire, life: int = 0) -> None:
        pending = self._pending.get(fire.shard)
        if pending is not None and pending.get(fire_key(fire), (None, life))[1] == life:
            pending.pop(fire_key(fire), None)

    def retry_later(self, fire: Fire, life: int = 0) -> None:
        """Forgets a fire whose handling failed, so the next read of the shard offers it again."""
        self.handled(fire, life)
        self._seen[fire.shard].pop(fire_key(fire), None)

    def handled_through(self, shard: int, bound: datetime) -> datetime:
        """The latest instant <= bound at which every taken fire of the shard is handled."""
        pending = self._pending.get(shard)
        if pending:
            bound = min(bound, min(due for due, _ in pending.values()) - EPSILON)
        return bound

    def passed(self, shard: int, cursor: datetime) -> None:
        """The shard's cursor is at `cursor`: fires due at or before it are never re-read."""
        seen = self._seen[shard]
        for key in [k for k, due in seen.items() if due <= cursor]:
            del seen[key]

    def drop_shard(self, shard: int) -> None:
        self._seen.pop(shard, None)
        self._pending.pop(shard, None)

    def in_progress(self, shard: int) -> int:
        return len(self._pending.get(shard, {}))
