"""Stopping background loops for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

RECANCEL_S = 0.5


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancels the tasks and waits until every one is done, cancelling again those still
    running every half second. One cancel can be lost on Python 3.11: asyncio.wait_for (which
    redis-py puts around every socket write) swallows a cancel that arrives as its operation
    completes, and a loop would then run on while its process waits for it to end."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
