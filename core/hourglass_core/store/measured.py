"""`measured(store)`: the store with the latency of each call observed at its edge, in
hourglass_store_request_seconds{operation="<Store method>"}: a clock read either side and one
histogram observation (a few microseconds), on calls that cost hundreds."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, cast

from hourglass_core.metrics import STORE_SECONDS
from hourglass_core.store.base import Store

# Every Store method but the schema's and closing: those run once.
OPERATIONS = tuple(name for name, member in vars(Store).items()
                   if inspect.iscoroutinefunction(member) and name not in {"migrate", "close"})  # fmt: skip


def _timed(call: Callable[..., Any], operation: str) -> Callable[..., Any]:
    # Its series is made at the first call: operations a process never makes export nothing.
    observe: Callable[[float], None] | None = None

    async def timed(*args: Any, **kwargs: Any) -> Any:
        nonlocal observe
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            if observe is None:
                observe = STORE_SECONDS.labels(operation).observe
            observe(time.perf_counter() - started)

    return timed


class _Measured:
    def __init__(self, store: Store) -> None:
        self._store = store
        for name in OPERATIONS:  # bound once: no look-up per call
            setattr(self, name, _timed(getattr(store, name), name))

    def __getattr__(self, name: str) -> Any:  # migrate, close, and what only one store has
        return getattr(self._store, name)


def measured(store: Store) -> Store:
    return cast(Store, _Measured(store))
