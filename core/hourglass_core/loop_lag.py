"""How late the event loop gets round to what is due on it, in hourglass_event_loop_lag_seconds.

A task asks to wake every `every` seconds and records how much later than asked it woke. A
stall longer than `warn_over` is logged (at most a line every 5 s) with how much of it the
loop's own thread spent on the CPU: about all of it means the process was busy (a long callback,
a garbage collection), little of it that the thread was waiting (for a CPU the box did not give
it, for the GIL held by the driver's thread, for a blocking call). A late fire whose Cassandra
requests were quick (see cassandra_io's slow-request log) was waiting for its loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Histogram

from hourglass_core.backoff import RateLimitedLog

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
EVERY_S = 0.1
WARN_OVER_S = 0.25

LOOP_LAG_SECONDS = Histogram(
    "hourglass_event_loop_lag_seconds",
    "How much later than asked the event loop woke a task that sleeps 0.1 s at a time.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@dataclass(frozen=True)
class Stall:
    lag_s: float  # how much later than asked the loop woke
    on_cpu_s: float  # how much CPU the loop's thread had over the sleep and the lag


def stall(asked_s: float, slept_s: float, thread_cpu_s: float) -> Stall:
    """The lag of one sleep of `asked_s` that took `slept_s`, the loop's thread having used
    `thread_cpu_s` of CPU meanwhile."""
    return Stall(max(0.0, slept_s - asked_s), max(0.0, thread_cpu_s))


async def watch_loop_lag(
    every: float = EVERY_S,
    warn_over: float = WARN_OVER_S,
    *,
    clock: Callable[[], float] = time.monotonic,
    thread_clock: Callable[[], float] = time.thread_time,
) -> None:
    """Forever (cancel to stop): one sleep of `every`, one observation, per round."""
    observe = LOOP_LAG_SECONDS.observe
    while True:
        started, cpu = clock(), thread_clock()
        await asyncio.sleep(every)
        found = stall(every, clock() - started, thread_clock() - cpu)
        observe(found.lag_s)
        if found.lag_s > warn_over:
            warn.warning("stall", "event loop stalled: woke %.2f s late; its thread had %.2f s of CPU in the %.2f s",
                         found.lag_s, found.on_cpu_s, found.lag_s + every)  # fmt: skip
