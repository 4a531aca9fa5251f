"""A mixed workload with known expected fires, and the checks run against what happened."""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import hourglass
from hourglass_core.triggers import fires_between


@dataclass(frozen=True)
class Planned:
    job: hourglass.Job
    expected: frozenset[datetime]


# Time from building the specs to their first fire: submitting a thousand jobs takes a few
# seconds on a busy 2-core box, and a fire must not fall due before its job is stored.
LEAD = timedelta(seconds=6)


def mixed_specs(t0: datetime, count: int, span_s: float, executor: str = "echo", max_attempts: int = 1,
                params: dict[str, object] | None = None) -> list[hourglass.JobSpec]:
    """count jobs: 70 % once, 20 % every 2 s, 10 % cron every 3 s (6 fields), all within
    [t0 + LEAD, t0 + LEAD + span_s]."""
    rng = random.Random(42)
    start = t0 + LEAD
    end = start + timedelta(seconds=span_s)
    retry = hourglass.RetryPolicy(max_attempts=max_attempts, initial_backoff=timedelta(milliseconds=200))
    options = hourglass.JobOptions(retry=retry)
    specs = []
    for i in range(count):
        kind = i % 10
        body = json.dumps(params or {"n": i}).encode()
        trigger: hourglass.Trigger
        if kind < 7:
            trigger = hourglass.OnceTrigger(at=start + timedelta(seconds=rng.uniform(0, span_s)))
        elif kind < 9:
            trigger = hourglass.IntervalTrigger(every=timedelta(seconds=2), start=start, end=end)
        else:
            trigger = hourglass.CronTrigger(expression="*/3 * * * * *", timezone="UTC", start=start, end=end)
        specs.append(
            hourglass.JobSpec(
                name=f"e2e-{i}", executor=executor, trigger=trigger,
                params=hourglass.Payload(body, "application/json"), options=options,
                labels={"suite": "e2e"},
            )
        )
    return specs


def expected_fires(job: hourglass.Job) -> frozenset[datetime]:
    t = job.trigger
    if isinstance(t, hourglass.OnceTrigger):
        # Submitted after its time: fires at once, and the run is due at submit time.
        return frozenset({job.next_fire_time or t.at})
    horizon = job.created_at + timedelta(hours=1)
    return frozenset(fires_between(t, job.created_at - timedelta(microseconds=1), horizon, 10_000))


def wait_for_executor(client: hourglass.Client, executor: str, timeout: float = 60) -> None:
    """Returns once a worker offers `executor` (until then submit says INVALID_ARGUMENT), so
    the specs that follow are built with the time they are really submitted at. The probe job
    submitted to find out is cancelled."""
    deadline = time.monotonic() + timeout
    probe = hourglass.JobSpec(
        name="readiness-probe", executor=executor,
        trigger=hourglass.OnceTrigger(at=datetime.now(UTC) + timedelta(days=1)),
    )  # fmt: skip
    while True:
        try:
            job = client.submit(probe, idempotent=False)
            break
        except hourglass.InvalidArgument:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    client.cancel(job.id, job.namespace)


def submit_all(client: hourglass.Client, specs: list[hourglass.JobSpec]) -> list[hourglass.Job]:
    jobs: list[hourglass.Job] = []
    for i in range(0, len(specs), 500):
        jobs.extend(client.submit_many(specs[i : i + 500]))
    return jobs


def all_runs(client: hourglass.Client, job: hourglass.Job) -> list[hourglass.Run]:
    runs: list[hourglass.Run] = []
    token = ""
    while True:
        page = client.runs(job.id, namespace=job.namespace, page_size=1000, page_token=token)
        runs.extend(page.items)
        token = page.next_page_token
        if not token:
            return runs


def wait_for_runs(client: hourglass.Client, planned: list[Planned], done, timeout: float):  # type: ignore[no-untyped-def]
    """Polls until `done(job, runs)` holds for every job; returns {job id: runs}."""
    deadline = time.monotonic() + timeout
    pending = {p.job.id: p for p in planned}
    seen: dict[str, list[hourglass.Run]] = {}
    while pending and time.monotonic() < deadline:
        for job_id, p in list(pending.items()):
            runs = all_runs(client, p.job)
            seen[job_id] = runs
            if done(p, runs):
                del pending[job_id]
        if pending:
            time.sleep(1.0)
    return seen


def lateness_ms(runs: list[hourglass.Run]) -> list[float]:
    return sorted(r.lateness.total_seconds() * 1000 for r in runs if r.lateness is not None)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} p50={percentile(values, .5):.1f}ms p99={percentile(values, .99):.1f}ms "
            f"max={max(values, default=0):.1f}ms mean={statistics.fmean(values) if values else 0:.1f}ms")


def now() -> datetime:
    return datetime.now(UTC)
