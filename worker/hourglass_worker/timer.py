"""The in-memory timer: fires read ahead from the store wait here until they are due."""

from __future__ import annotations

import asyncio
import heapq
from datetime import UTC, datetime

from hourglass_core.models import Fire

FireKey = tuple[str, str, datetime, int]


def fire_key(fire: Fire) -> FireKey:
    return (fire.namespace, fire.job_id, fire.due, fire.attempt)


class FireTimer:
    """A heap of fires by due time. Each fire is taken at most once while it is known: adding
    a fire already waiting, or already taken and not yet forgotten, does nothing."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, FireKey, Fire]] = []
        self._known: set[FireKey] = set()
        self._wake = asyncio.Event()

    def add(self, fire: Fire) -> bool:
        key = fire_key(fire)
        if key in self._known:
            return False
        self._known.add(key)
        heapq.heappush(self._heap, (fire.due, -fire.priority, key, fire))
        self._wake.set()
        return True

    def forget(self, fire: Fire) -> None:
        """After a fire is fully handled (and the read cursor has passed it)."""
        self._known.discard(fire_key(fire))

    def drop_shard(self, shard: int) -> list[Fire]:
        """Removes the waiting fires of a shard no longer owned; returns them."""
        dropped = [entry[3] for entry in self._heap if entry[3].shard == shard]
        self._heap = [entry for entry in self._heap if entry[3].shard != shard]
        heapq.heapify(self._heap)
        for fire in dropped:
            self._known.discard(fire_key(fire))
        return dropped

    def __len__(self) -> int:
        return len(self._heap)

    async def next_due(self) -> list[Fire]:
        """Waits until at least one fire is due; returns every due fire, highest priority
        first, then earliest."""
        while True:
            now = datetime.now(UTC)
            if self._heap and self._heap[0][0] <= now:
                due: list[Fire] = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[3])
                due.sort(key=lambda f: (-f.priority, f.due))
                return due
            self._wake.clear()
            delay = (self._heap[0][0] - now).total_seconds() if self._heap else 3600.0
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
