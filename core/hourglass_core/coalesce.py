"""`Coalescer`: many small concurrent calls to a backend made as a few larger ones.

Cassandra spends about as much CPU on a request's overhead as on its content, so a request
carrying a dozen writes costs little more than one carrying one. Calls are grouped by key
(what the backend can serve in one request: a partition, a namespace, or everything) and
made "naturally batched": an item whose key has a free flush slot goes at once, alone; items
that arrive while the key's slots are all busy wait and go together in the next flush. An idle
system thus adds no delay, and a loaded one makes fewer, larger requests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Lane(Generic[T, R]):
    waiting: deque[tuple[T, asyncio.Future[R]]] = field(default_factory=deque)
    flushing: int = 0


class Coalescer(Generic[K, T, R]):
    """`await call(key, item)` returns `flush(key, items)[i]` for the item's place i in the
    group it went with; an exception raised by `flush` is raised to every caller of that group
    (each decides whether to try again). A caller that is cancelled does not withdraw its item
    if its flush has begun."""

    def __init__(
        self,
        flush: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        max_items: int,
        max_flushing: int = 1,
        name: str = "coalesce",
    ) -> None:
        if max_items < 1 or max_flushing < 1:
            raise ValueError("max_items and max_flushing must be positive")
        self._flush = flush
        self._max_items = max_items
        self._max_flushing = max_flushing
        self._name = name
        self._lanes: dict[K, _Lane[T, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, key: K, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.waiting.append((item, future))
        if lane.flushing < self._max_flushing:
            lane.flushing += 1
            task = asyncio.create_task(self._drain(key, lane), name=f"{self._name}-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, key: K, lane: _Lane[T, R]) -> None:
        """Flushes groups of the lane until nothing waits; then frees its slot."""
        try:
            while lane.waiting:
                group = [lane.waiting.popleft() for _ in range(min(self._max_items, len(lane.waiting)))]
                try:
                    results = await self._flush(key, [item for item, _ in group])
                    if len(results) != len(group):
                        raise RuntimeError(f"{self._name}: {len(results)} results for {len(group)} items")
                except BaseException as error:
                    cancelled = isinstance(error, asyncio.CancelledError)
                    for _, future in group:
                        if not future.done():
                            future.cancel() if cancelled else future.set_exception(error)
                    if cancelled:
                        raise
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            lane.flushing -= 1
            if lane.flushing == 0:
                for _, future in lane.waiting:  # cancelled with items still waiting
                    future.cancel()
                lane.waiting.clear()
                if self._lanes.get(key) is lane:
                    del self._lanes[key]

    async def close(self) -> None:
        """Cancels the flushes under way (their callers get CancelledError)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def coalesced_writes(
    write: Callable[[list[T]], Awaitable[None]], *, max_items: int, max_flushing: int = 2, name: str
) -> Coalescer[None, T, None]:
    """A Coalescer of writes that return nothing, all under one key (`call(None, item)`)."""

    async def flush(_: None, items: list[T]) -> list[None]:
        await write(items)
        return [None] * len(items)

    return Coalescer(flush, max_items=max_items, max_flushing=max_flushing, name=name)
