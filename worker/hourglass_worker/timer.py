"""The in-memory timer: prepared fires wait here until they are due."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime

from hourglass_core.models import Fire

FireKey = tuple[str, str, datetime, int]


def fire_key(fire: Fire) -> FireKey:
    return (fire.namespace, fire.job_id, fire.at, fire.attempt)


class FireTimer:
    """A heap of fires by due time (then higher priority first). Removal is the caller's
    business: it skips fires it no longer wants when they come out."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, int, Fire]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()

    def add(self, fire: Fire, at: datetime | None = None) -> None:
        """Returns the fire from next_due() at `at` (default: when it is due)."""
        when = at or fire.due
        sooner = not self._heap or when < self._heap[0][0]
        heapq.heappush(self._heap, (when, -fire.priority, next(self._order), fire))
        if sooner:  # else the waiter wakes for the earlier one first anyway
            self._wake.set()

    def hurry(self) -> None:
        """Every fire comes out now rather than at the time it was added for."""
        now = datetime.now(UTC)
        self._heap = [(min(at, now), prio, order, fire) for at, prio, order, fire in self._heap]
        heapq.heapify(self._heap)
        self._wake.set()

    def __len__(self) -> int:
        return len(self._heap)

    async def next_due(self) -> list[Fire]:
        """Waits until at least one fire is due; returns every due fire, highest priority
        first, then earliest."""
        loop = asyncio.get_running_loop()
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
            # A timer handle, not wait_for: that makes a task (and on timeout an exception
            # with its traceback) on every wake, and the loop wakes for most fires.
            alarm = loop.call_later(delay, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                alarm.cancel()
