"""Waiting in end-to-end tests: poll a condition until it holds, or fail saying what did not
happen within how long."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def first(what: str, probe: Callable[[], T | None], timeout: float = 20.0, every: float = 0.1) -> T:
    """The first answer of `probe` that is not None."""
    deadline = time.monotonic() + timeout
    while True:
        if (found := probe()) is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


def until(what: str, probe: Callable[[], bool], timeout: float = 20.0, every: float = 0.1) -> None:
    first(what, lambda: True if probe() else None, timeout, every)
