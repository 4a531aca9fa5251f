"""Executors: the code a job runs, registered by name on the worker.

A client names an executor; it never names code to import. Built-ins: echo, sleep, fail, http.
An operator adds more in the worker's own configuration (`--executors name=pkg.module:function`).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hourglass_core.models import Payload


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an executor receives. `run_id` and `attempt` let it make side effects idempotent:
    a run cut off by a crash is retried as a new attempt of the same fire."""

    namespace: str
    job_id: str
    run_id: str
    attempt: int
    due: datetime
    params: Payload
    cancelled: threading.Event = field(default_factory=threading.Event)
    timeout: timedelta | None = None  # the job's: the run is TIMED_OUT past it


Result = Payload | bytes | str | dict[str, object] | list[object] | None
Executor = Callable[[RunContext], Result | Awaitable[Result]]


class ExecutorFailed(Exception):
    """Raised by an executor to fail its run with a message."""


def echo(ctx: RunContext) -> Payload:
    """Returns its params unchanged."""
    return ctx.params


def params_json(ctx: RunContext) -> dict[str, object]:
    if not ctx.params.data:
        return {}
    try:
        value = json.loads(ctx.params.data)
    except ValueError as error:
        raise ExecutorFailed(f"params must be JSON: {error}") from error
    if not isinstance(value, dict):
        raise ExecutorFailed("params must be a JSON object")
    return value


async def sleep(ctx: RunContext) -> dict[str, object]:
    """Sleeps for params {"seconds": x} (default 1), then returns them."""
    seconds = float(params_json(ctx).get("seconds", 1.0))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def fail(ctx: RunContext) -> None:
    """Always fails, with params {"message": ...} as the error."""
    message = str(params_json(ctx).get("message", "failed on purpose"))
    raise ExecutorFailed(message)


BUILTINS: Mapping[str, Executor] = {"echo": echo, "sleep": sleep, "fail": fail}


def load_executors(spec: str, http: Executor | None = None) -> dict[str, Executor]:
    """The built-ins (`http`: the guarded http executor, see http_executor) plus the
    operator's "name=package.module:function,..." entries. Raises ValueError naming the entry
    that cannot be loaded."""
    registry: dict[str, Executor] = dict(BUILTINS)
    if http is not None:
        registry["http"] = http
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, target = entry.partition("=")
        module_name, colon, attr = target.partition(":")
        if not sep or not colon or not name.strip():
            raise ValueError(f"executor entry {entry!r} is not name=package.module:function")
        try:
            function = getattr(importlib.import_module(module_name.strip()), attr.strip())
        except (ImportError, AttributeError) as error:
            raise ValueError(f"executor {name!r}: cannot load {target!r}: {error}") from error
        if not callable(function):
            raise ValueError(f"executor {name!r}: {target!r} is not callable")
        registry[name.strip()] = function
    return registry


def to_payload(result: Result) -> Payload:
    """An executor's return value as the run's result."""
    if result is None:
        return Payload(b"", "application/octet-stream")
    if isinstance(result, Payload):
        return result
    if isinstance(result, bytes):
        return Payload(result, "application/octet-stream")
    if isinstance(result, str):
        return Payload(result.encode(), "text/plain; charset=utf-8")
    return Payload(json.dumps(result).encode(), "application/json")
