"""RunWatch: interest announced, pointers published only while someone watches, bounded
buffers that count what a slow watcher lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_coordinator import run_watch
from hourglass_coordinator.run_watch import RunWatch
from hourglass_core.errors import RunNotFound
from hourglass_core.firing import run_id_for
from hourglass_core.models import Fire, FireKind, Run, RunStatus

T0 = datetime(2026, 12, 6, tzinfo=UTC)


def _run(job: str, i: int, namespace: str = "ns") -> Run:
    due = T0 + timedelta(seconds=i)
    return Run(namespace, job, run_id_for(namespace, job, due, 1), due, 1, RunStatus.SUCCEEDED, "w")


class _Cluster:
    """One replica whose published hints come back to it, as through the hint channel."""

    def __init__(self) -> None:
        self.published: list[Fire] = []
        self.stored: dict[str, Run] = {}
        self.watch = RunWatch(self.publish, self.read)

    async def publish(self, fire: Fire) -> None:
        self.published.append(fire)
        self.watch.heard(fire)

    async def read(self, run_id: str) -> Run:
        if run_id not in self.stored:
            raise RunNotFound(run_id)
        return self.stored[run_id]

    async def record(self, *runs: Run) -> None:
        self.stored.update({r.run_id: r for r in runs})
        if self.watch.watched:
            await self.watch.recorded(runs)


async def test_nothing_is_published_until_someone_watches_then_only_the_watched_jobs_runs() -> None:
    cluster = _Cluster()
    await cluster.record(_run("a", 0))
    assert cluster.published == [] and not cluster.watch.watched
    stream = cluster.watch.watch("ns", "a")
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    assert [f.kind for f in cluster.published] == [FireKind.WATCH] and cluster.watch.watched
    await cluster.record(_run("a", 1), _run("b", 2), _run("a", 3, namespace="other"))
    run, dropped = await asyncio.wait_for(first, 1)
    assert (run.job_id, run.due, dropped) == ("a", T0 + timedelta(seconds=1), 0)
    assert [f.job_id for f in cluster.published if f.kind is FireKind.RAN] == ["a"]
    await stream.aclose()


async def test_a_namespace_watcher_sees_every_job_and_a_slow_one_is_told_what_it_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_watch, "BUFFER", 3)
    cluster = _Cluster()
    stream = cluster.watch.watch("ns", "")
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    await cluster.record(*[_run(f"j{i}", i) for i in range(6)])
    await asyncio.sleep(0.05)  # every pointer read and offered; the buffer holds 3
    got = [await asyncio.wait_for(first, 1)] + [await stream.__anext__() for _ in range(2)]
    assert [r.job_id for r, _ in got] == ["j0", "j1", "j2"]
    await cluster.record(_run("j9", 9))
    await asyncio.sleep(0.05)
    run, dropped = await asyncio.wait_for(stream.__anext__(), 1)
    assert (run.job_id, dropped) == ("j9", 3)
    await stream.aclose()
