"""Counts over the last minute, in one-second buckets: the memory stays the same however many
events come (a worker may finish a thousand runs a second)."""

from __future__ import annotations

import time
from collections.abc import Callable

from hourglass_core.cluster import COUNT_WINDOW

_SECONDS = int(COUNT_WINDOW.total_seconds())


class MinuteCount:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts = [0] * _SECONDS
        self._second = [-1] * _SECONDS  # the second each bucket counts

    def add(self, n: int = 1) -> None:
        second = int(self._clock())
        i = second % _SECONDS
        if self._second[i] != second:  # a bucket of a minute ago: start it afresh
            self._second[i], self._counts[i] = second, 0
        self._counts[i] += n

    def total(self) -> int:
        """Events of the last minute (the current second included, the one a minute ago not)."""
        now = int(self._clock())
        return sum(c for c, s in zip(self._counts, self._second, strict=True) if now - s < _SECONDS)
