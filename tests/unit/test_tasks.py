"""cancel_all: background loops end even when a cancel is lost."""

from __future__ import annotations

import asyncio

from hourglass_core.tasks import cancel_all


async def test_a_loop_that_lost_its_first_cancel_is_cancelled_again_until_it_ends() -> None:
    lost: list[int] = []

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost.append(1)  # swallowed, as Python 3.11's wait_for can do

    tasks = [asyncio.create_task(loop()), asyncio.create_task(asyncio.sleep(60))]
    await asyncio.sleep(0.01)
    async with asyncio.timeout(3):
        await cancel_all(tasks)
    assert lost == [1] and all(t.done() for t in tasks)
