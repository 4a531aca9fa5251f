"""The Coalescer (no I/O): alone when idle, grouped while busy, errors to the whole group."""

from __future__ import annotations

import asyncio

import pytest

from hourglass_core.coalesce import Coalescer


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def flush(self, key: str, items: list[int]) -> list[int]:
        self.groups.append((key, items))
        await self.release.wait()
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 10 for i in items]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_idle_key_flushes_at_once_and_later_items_wait_to_go_together() -> None:
    rec = Recorder()
    co: Coalescer[str, int, int] = Coalescer(rec.flush, max_items=3)
    calls = [asyncio.create_task(co.call("a", 0))]
    await settle()
    assert rec.groups == [("a", [0])]  # alone, at once
    calls += [asyncio.create_task(co.call("a", i)) for i in range(1, 5)]
    await settle()
    assert rec.groups == [("a", [0])]  # the rest wait for it
    rec.release.set()
    assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [0, 10, 20, 30, 40]
    assert rec.groups == [("a", [0]), ("a", [1, 2, 3]), ("a", [4])]  # at most max_items each


async def test_keys_flush_independently_and_up_to_max_flushing_at_once() -> None:
    rec = Recorder()
    co: Coalescer[str, int, int] = Coalescer(rec.flush, max_items=10, max_flushing=2)
    calls = []
    for key, item in (("a", 1), ("b", 2), ("a", 3), ("a", 4)):
        calls.append(asyncio.create_task(co.call(key, item)))
        await settle()
    assert sorted(rec.groups) == [("a", [1]), ("a", [3]), ("b", [2])]  # "a" 4 waits for a slot
    rec.release.set()
    assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [10, 20, 30, 40]


async def test_a_failed_flush_fails_its_group_only() -> None:
    rec = Recorder(fail_on=2)
    co: Coalescer[str, int, int] = Coalescer(rec.flush, max_items=2)
    calls = [asyncio.create_task(co.call("a", i)) for i in range(4)]
    rec.release.set()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert rec.groups == [("a", [0, 1]), ("a", [2, 3])]
    assert results[:2] == [0, 10]
    assert all(isinstance(r, ValueError) for r in results[2:])


async def test_close_cancels_callers_of_unfinished_flushes() -> None:
    rec = Recorder()
    co: Coalescer[str, int, int] = Coalescer(rec.flush, max_items=2)
    calls = [asyncio.create_task(co.call("a", i)) for i in range(3)]
    await settle()
    await asyncio.wait_for(co.close(), 5)
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder().flush, max_items=0)
