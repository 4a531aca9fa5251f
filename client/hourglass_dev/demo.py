"""`hourglass dev --demo`: a few sample jobs and a live terminal view of fires and runs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from rich.console import Group
from rich.live import Live
from rich.table import Table

import hourglass

REFRESH_S = 0.5
RECENT_RUNS = 12


def sample_jobs(now: datetime) -> list[hourglass.JobSpec]:
    def params(obj: object) -> hourglass.Payload:
        return hourglass.Payload(json.dumps(obj).encode(), "application/json")

    return [
        hourglass.JobSpec(
            name="demo: once in 5 s",
            executor="echo",
            trigger=hourglass.OnceTrigger(at=now + timedelta(seconds=5)),
            params=params({"hello": "world"}),
            idempotency_key="demo-once",
        ),
        hourglass.JobSpec(
            name="demo: every 3 s",
            executor="echo",
            trigger=hourglass.IntervalTrigger(every=timedelta(seconds=3), start=now + timedelta(seconds=1)),
            params=params({"tick": True}),
            idempotency_key="demo-interval",
        ),
        hourglass.JobSpec(
            name="demo: cron */5 seconds",
            executor="sleep",
            trigger=hourglass.CronTrigger(expression="*/5 * * * * *", timezone="UTC"),
            params=params({"seconds": 0.5}),
            idempotency_key="demo-cron",
        ),
        hourglass.JobSpec(
            name="demo: fails, retries 3x",
            executor="fail",
            trigger=hourglass.IntervalTrigger(every=timedelta(seconds=20), start=now + timedelta(seconds=2)),
            params=params({"message": "boom (on purpose)"}),
            options=hourglass.JobOptions(
                retry=hourglass.RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1))
            ),
            idempotency_key="demo-retry",
        ),
    ]


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    seconds = (t - now).total_seconds()
    return f"in {seconds:.1f}s" if seconds >= 0 else f"{-seconds:.1f}s ago"


def render(jobs: list[hourglass.Job], runs: list[hourglass.Run], now: datetime, dashboard: str = "") -> Group:
    upcoming = Table(title="Upcoming fires", caption=f"and in a browser: {dashboard}" if dashboard else None, expand=True)
    for column in ("job", "executor", "state", "next fire"):
        upcoming.add_column(column)
    for job in sorted(jobs, key=lambda j: j.next_fire_time or datetime.max.replace(tzinfo=UTC)):
        upcoming.add_row(job.name, job.executor, job.state.value, _ago(job.next_fire_time, now))
    recent = Table(title="Recent runs", expand=True)
    for column in ("job", "attempt", "status", "due", "lateness", "worker", "result / error"):
        recent.add_column(column)
    names = {job.id: job.name for job in jobs}
    for run in runs[:RECENT_RUNS]:
        late = "-" if run.lateness is None else f"{run.lateness.total_seconds() * 1000:.1f} ms"
        detail = run.error or run.result.data.decode(errors="replace")[:40]
        recent.add_row(names.get(run.job_id, run.job_id[:8]), str(run.attempt), run.status.value,
                       _ago(run.due, now), late, run.worker_id, detail)
    return Group(upcoming, recent)


async def run_demo(address: str, seconds: float, stop: asyncio.Event, dashboard: str = "") -> None:
    """Submits the samples (idempotently: a restart reuses them) and refreshes the view
    (`dashboard`: its URL, shown with it)."""
    async with hourglass.AsyncClient(address) as client:
        jobs: list[hourglass.Job] = []
        for spec in sample_jobs(datetime.now(UTC)):
            for _ in range(50):  # the workers register their executors a moment after start
                try:
                    jobs.append(await client.submit(spec))
                    break
                except hourglass.InvalidArgument:
                    await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        ends = loop.time() + seconds if seconds > 0 else None
        with Live(render(jobs, [], datetime.now(UTC), dashboard), refresh_per_second=4) as live:
            while not stop.is_set() and (ends is None or loop.time() < ends):
                jobs = [await client.get(job.id) for job in jobs]
                runs = [run for job in jobs for run in (await client.runs(job.id, page_size=RECENT_RUNS)).items]
                runs.sort(key=lambda r: r.started_at or r.ended_at or r.due, reverse=True)
                live.update(render(jobs, runs, datetime.now(UTC), dashboard))
                await asyncio.sleep(REFRESH_S)
        stop.set()
