"""What the metrics add to each fire, in microseconds of CPU: the worker's calls at the executor
call and at the outcome, the coordinator's count of the recorded run, and a store call's timing
at the edge (a fire makes less than one: reads, claims and moves are batched).

    python -m benchmarks.metrics_cost
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.metrics import count_recorded, runs_recorded
from hourglass_core.models import Run, RunStatus
from hourglass_core.store.measured import _timed
from hourglass_worker.metrics import fire_metrics

N = 200_000


def per_call_us(body: Callable[[], object], n: int = N) -> float:
    body()  # the first call makes the children
    started = time.process_time()
    for _ in range(n):
        body()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    fires = fire_metrics()
    due = datetime.now(UTC)
    started = due + timedelta(milliseconds=3)

    def worker_fire() -> None:  # as Worker._execute does per fire
        counts = fires[("billing", "http")]
        counts.lateness.observe((started - due).total_seconds())
        counts.outcomes[RunStatus.SUCCEEDED].inc()

    recorded = runs_recorded()
    run = [Run("billing", "j", "r", due, 1, RunStatus.SUCCEEDED)]

    async def nothing() -> None:
        return None

    timed = _timed(nothing, "bench")
    loop = asyncio.new_event_loop()
    bare = per_call_us(lambda: loop.run_until_complete(nothing()), 20_000)
    measured = per_call_us(lambda: loop.run_until_complete(timed()), 20_000)
    loop.close()
    print(f"worker, per fire (children look-up, lateness observe, outcome inc): {per_call_us(worker_fire):.2f} µs")
    print(f"coordinator, per recorded run (children look-up, inc):              {per_call_us(lambda: count_recorded(recorded, run)):.2f} µs")
    print(f"store edge, per call (two clock reads, one observe):                {measured - bare:.2f} µs")


if __name__ == "__main__":
    main()
