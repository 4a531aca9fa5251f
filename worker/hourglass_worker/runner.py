"""Runs one executor call under the job's timeout, in a bounded thread pool or on the loop."""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from hourglass_core.models import Payload, RunStatus
from hourglass_worker.executors import Executor, ExecutorFailed, RunContext, to_payload

MAX_ERROR = 4000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: RunStatus
    result: Payload = field(default_factory=Payload)
    error: str = ""


class _NotStarted(Exception):
    pass


class Runner:
    """Blocking executors run in a thread pool as large as the worker's capacity; coroutine
    executors run on the event loop. A timed-out thread cannot be killed: its context's
    `cancelled` event is set, the run is reported TIMED_OUT, and the thread's late result is
    dropped."""

    def __init__(self, capacity: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="executor")

    async def run(
        self, executor: Executor, ctx: RunContext, timeout: timedelta | None, start_by: float = float("inf"),
        on_start: Callable[[], object] = lambda: None,
    ) -> Outcome | None:  # fmt: skip
        """The call's outcome; None when it would start after `start_by` (time.monotonic: the
        lease check made before it is stale by then, e.g. the process was frozen in between),
        checked right before the executor is called, in its own thread: nothing was called.
        `on_start` is called (in that thread) once the call is sure to start."""
        seconds = None if timeout is None else timeout.total_seconds()

        def in_time() -> None:
            if time.monotonic() > start_by:
                raise _NotStarted
            on_start()

        def blocking(ctx: RunContext) -> object:
            in_time()
            return executor(ctx)

        async def on_loop() -> object:
            in_time()
            return await executor(ctx)  # type: ignore[misc]

        try:
            call: Awaitable[object]
            if inspect.iscoroutinefunction(executor):
                call = on_loop()
            else:
                call = asyncio.get_running_loop().run_in_executor(self._pool, blocking, ctx)
            result = await asyncio.wait_for(call, seconds)
            return Outcome(RunStatus.SUCCEEDED, to_payload(result))  # type: ignore[arg-type]
        except _NotStarted:
            return None
        except TimeoutError:
            ctx.cancelled.set()
            return Outcome(RunStatus.TIMED_OUT, error=f"timed out after {timeout}")
        except asyncio.CancelledError:
            ctx.cancelled.set()
            raise
        except ExecutorFailed as error:
            return Outcome(RunStatus.FAILED, error=str(error)[:MAX_ERROR])
        except Exception as error:  # noqa: BLE001 - any executor bug fails only its run
            detail = "".join(traceback.format_exception_only(error)).strip()
            return Outcome(RunStatus.FAILED, error=detail[:MAX_ERROR])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
