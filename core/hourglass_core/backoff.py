"""Backing off while a backend is away, without hot loops and without flooding the log (shared by
the coordinator and the worker)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """Exponential delays with "equal jitter" (between half and all of the capped delay), so
    many waiters that failed together do not come back together."""

    def __init__(self, initial: float = 0.1, cap: float = 5.0, multiplier: float = 2.0) -> None:
        self._initial, self._cap, self._multiplier = initial, cap, multiplier
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        self.failures += 1
        base = min(self._cap, self._initial * self._multiplier ** (self.failures - 1))
        return base / 2 + random.random() * base / 2

    def reset(self) -> None:
        self.failures = 0


class RateLimitedLog:
    """Logs a recurring warning at most once per `every` seconds per key, saying how many were
    suppressed meanwhile: an outage of a backend gives a few lines, not thousands."""

    def __init__(self, logger: logging.Logger, every: float = 5.0) -> None:
        self._log = logger
        self._every = every
        self._last: dict[str, tuple[float, int]] = {}

    def warning(
        self, key: str, message: str, *args: object, fields: Callable[[], Mapping[str, object]] | None = None
    ) -> None:
        """`fields()`, the line's structured fields, is called only for a line logged."""
        now = time.monotonic()
        last, suppressed = self._last.get(key, (float("-inf"), 0))
        if now - last < self._every:
            self._last[key] = (last, suppressed + 1)
            return
        if suppressed:
            message += f" ({suppressed} similar suppressed)"
        self._last[key] = (now, 0)
        self._log.warning(message, *args, extra=None if fields is None else fields())


async def until_done(
    write: Callable[[], Awaitable[T]], warn: RateLimitedLog, key: str, what: str, *, cap: float = 5.0
) -> T:
    """Awaits `write()` until it succeeds, backing off between failures: for a write that
    must become durable however long the store is away (cancel the task to stop it)."""
    backoff = Backoff(0.1, cap)
    while True:
        try:
            return await write()
        except Exception as error:  # noqa: BLE001 - the store may be away for a while
            warn.warning(key, "%s failed (retrying): %s", what, error)
            await asyncio.sleep(backoff.next_delay())
