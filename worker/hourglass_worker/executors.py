"""Executors: the code a job runs, registered by name on the worker.

A client names an executor; it never names code to import. Built-ins: echo, sleep, fail, http.
An operator adds more in the worker's own configuration (`--executors name=pkg.module:function`).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

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


Result = Payload | bytes | str | dict[str, object] | list[object] | None
Executor = Callable[[RunContext], Result | Awaitable[Result]]


class ExecutorFailed(Exception):
    """Raised by an executor to fail its run with a message."""


def echo(ctx: RunContext) -> Payload:
    """Returns its params unchanged."""
    return ctx.params


def _params_json(ctx: RunContext) -> dict[str, object]:
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
    seconds = float(_params_json(ctx).get("seconds", 1.0))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def fail(ctx: RunContext) -> None:
    """Always fails, with params {"message": ...} as the error."""
    message = str(_params_json(ctx).get("message", "failed on purpose"))
    raise ExecutorFailed(message)


def http(ctx: RunContext) -> dict[str, object]:
    """Calls params {"url", "method"="GET", "headers"={}, "body"="", "timeout"=10}; returns
    {"status", "body"}. A status of 400 or more fails the run."""
    p = _params_json(ctx)
    url = str(p.get("url", ""))
    if not url.startswith(("http://", "https://")):
        raise ExecutorFailed("params.url must be an http(s) URL")
    body = p.get("body")
    request = urllib.request.Request(
        url,
        data=None if body is None else str(body).encode(),
        method=str(p.get("method", "GET")).upper(),
        headers={str(k): str(v) for k, v in dict(p.get("headers") or {}).items()},  # type: ignore[call-overload]
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=float(p.get("timeout", 10))) as response:  # type: ignore[arg-type]
            status, text = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        raise ExecutorFailed(f"HTTP {error.code}: {error.read().decode(errors='replace')[:1000]}") from error
    except (urllib.error.URLError, OSError) as error:
        raise ExecutorFailed(f"request to {url} failed: {error}") from error
    return {"status": status, "body": text, "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}


BUILTINS: Mapping[str, Executor] = {"echo": echo, "sleep": sleep, "fail": fail, "http": http}


def load_executors(spec: str) -> dict[str, Executor]:
    """The built-ins plus the operator's "name=package.module:function,..." entries.
    Raises ValueError naming the entry that cannot be loaded."""
    registry: dict[str, Executor] = dict(BUILTINS)
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
