"""A worker killed at an exact point of a fire's way to its executor (the worker's
HOURGLASS_TEST_DIE hook), on real Cassandra and Redis; the shard's next owner decides from the
dead worker's begun watermark. Counted from the probe executor's own log of calls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hourglass
from benchmarks import chaos_judge, chaos_probe
from benchmarks.cluster import Cluster
from hourglass_worker.worker import DIE_ENV
from tests.e2e.conftest import secured
from tests.e2e.workload import wait_for_executor

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path: Path, cassandra_up: None, redis_up: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    c = secured(Cluster(name=f"crash_{int(time.time() * 1000) % 10**8}", tmp=tmp_path, num_shards=4, secure=True), monkeypatch)
    c.migrate()
    try:
        yield c
    finally:
        c.stop()
        chaos_judge.drop_keyspace(c.cassandra, c.keyspace)


def _calls(exec_dir: Path) -> list[chaos_probe.Call]:
    return [c for c in chaos_probe.read_calls(exec_dir) if c.kind == "S"]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _kill_at(
    cluster: Cluster, tmp_path: Path, stage: str, options: list[hourglass.JobOptions]
) -> tuple[list[hourglass.Job], Path]:
    """Runs w1 with the hook at `stage` for jobs named die-*, submits one once-job per options
    (all due at the same instant), waits for w1 to die, then starts w2."""
    exec_dir = tmp_path / "exec"
    probe = {"HOURGLASS_EXECUTORS": chaos_probe.SPEC, "HOURGLASS_CHAOS_DIR": str(exec_dir)}
    cluster.start_coordinator()
    cluster.start_worker("w1", **probe, **{DIE_ENV: f"{stage}:die-"})
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, chaos_probe.NAME)
        at = datetime.now(UTC) + timedelta(seconds=4)
        jobs = client.submit_many([
            hourglass.JobSpec(f"die-{i}", chaos_probe.NAME, hourglass.OnceTrigger(at), options=o)
            for i, o in enumerate(options)
        ])  # fmt: skip
        _wait(lambda: cluster.workers["w1"].poll() is not None, 15, "w1 to die at the hook")
        assert not _calls(exec_dir), "w1 called an executor before the point it was to die at"
        cluster.start_worker("w2", **probe)
    return jobs, exec_dir


def test_a_fire_whose_worker_died_before_its_executor_began_runs_once_as_the_same_attempt(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Killed with the fire out of the timer, its run slot taken, before the begun watermark
    covered it: the executor certainly never began, so w2 runs it as attempt 1, and no run of
    it is recorded LOST."""
    record = hourglass.JobOptions(on_worker_lost=hourglass.WorkerLostPolicy.RECORD)
    (job,), exec_dir = _kill_at(cluster, tmp_path, "cover", [record])
    _wait(lambda: bool(_calls(exec_dir)), 30, "the fire to run on w2")
    time.sleep(2)  # a second call would show by now
    assert [(c.attempt, c.worker) for c in _calls(exec_dir)] == [(1, "w2")]
    with hourglass.Client(cluster.address, timeout=30) as client:
        _wait(lambda: bool(client.runs(job.id).items) and client.runs(job.id).items[0].status.finished, 20, "the result")
        runs = client.runs(job.id).items
    assert [(r.attempt, r.status, r.worker_id) for r in runs] == [(1, hourglass.RunStatus.SUCCEEDED, "w2")], runs


def test_a_fire_whose_worker_died_at_the_call_is_retried_unless_the_job_says_record(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Killed with the fire covered by the watermark and its lease checked, right before the
    call: w2 cannot know whether the executor began. on_worker_lost RETRY (the default, with
    max_attempts 1) records attempt 1 LOST and runs attempt 2; RECORD records it LOST and stops."""
    retry, record = hourglass.JobOptions(), hourglass.JobOptions(on_worker_lost=hourglass.WorkerLostPolicy.RECORD)
    (retried, recorded), exec_dir = _kill_at(cluster, tmp_path, "call", [retry, record])
    _wait(lambda: bool(_calls(exec_dir)), 30, "the retry to run on w2")
    with hourglass.Client(cluster.address, timeout=30) as client:

        def lost(job: hourglass.Job) -> hourglass.Run | None:
            return next((r for r in client.runs(job.id).items if r.status is hourglass.RunStatus.LOST), None)

        _wait(lambda: lost(retried) is not None and lost(recorded) is not None, 20, "both cut-off runs recorded")
        time.sleep(2)
        for job in (retried, recorded):
            cut = lost(job)
            assert cut is not None and cut.attempt == 1 and cut.reason is hourglass.RunReason.WORKER_LOST, cut
            assert cut.worker_id == "w1" and "w1" in cut.error, cut
        _wait(lambda: any(r.status is hourglass.RunStatus.SUCCEEDED for r in client.runs(retried.id).items), 20, "attempt 2")
        assert [(r.attempt, r.status) for r in client.runs(recorded.id).items] == [(1, hourglass.RunStatus.LOST)]
    assert [(c.job_id, c.attempt, c.worker) for c in _calls(exec_dir)] == [(retried.id, 2, "w2")]
