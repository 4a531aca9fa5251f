"""Faults without loss (issue 5): the short versions of the chaos scenarios (benchmarks/chaos),
on real processes with real Redis and Cassandra, each under a steady load of about 80 fires/s;
the four faults of scenario 7 in one run; plus run timeouts, retries with backoff, and recovery
of long runs cut off by a dead worker.

The scenarios that stop Redis or Cassandra use instances of their own (Redis on 6390, a second
Cassandra on 9142 with its state in .services/chaos, started once for the session); the shared
ones are never stopped. `make chaos` runs the full versions (>= 250 fires/s) with a report.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import hourglass
from benchmarks import chaos_judge, chaos_probe
from benchmarks.chaos_faults import OwnCassandra
from benchmarks.chaos_scenarios import SCENARIOS, WORKER_TIMEOUT_S, run_scenario
from benchmarks.cluster import Cluster
from tests.e2e.conftest import secured
from tests.e2e.workload import wait_for_executor

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def own_cassandra(cassandra_up: None) -> Iterator[OwnCassandra]:
    """A Cassandra of our own, to freeze; started once (it takes half a minute) and stopped
    at the end of the session."""
    node = OwnCassandra()
    node.start()
    try:
        yield node
    finally:
        node.stop()


def _scenario(number: int, **kwargs: Any) -> dict[str, Any]:
    spec = next(s for s in SCENARIOS if s.number == number)
    result = run_scenario(spec, spec.profile(short=True), short=True, **kwargs)
    summary = {k: result[k] for k in ("expected", "ran", "lost", "duplicated", "retried_attempts", "call_log", "facts",
                                      "lost_sample")}  # fmt: skip
    print(f"{spec.title}: {json.dumps(summary, default=str)}")
    failed = [check for check, ok in result["checks"].items() if not ok]
    assert not failed, f"missed: {failed}; {summary}; logs in {result['logs']}"
    assert result["stuck_running"] == 0 and result["unexpected"] == 0, result
    return result


def test_sigkilled_worker_loses_no_fire_and_its_shards_run_elsewhere_within_timeout_plus_1s(
    cassandra_up: None, redis_up: None
) -> None:
    _scenario(1)


def test_frozen_worker_runs_nothing_it_lost_after_resuming_and_rejoins(cassandra_up: None, redis_up: None) -> None:
    _scenario(2)


def test_killed_leader_is_replaced_within_lease_ttl_plus_1s_and_no_submit_is_lost(
    cassandra_up: None, redis_up: None
) -> None:
    result = _scenario(3)
    assert result["submits"]["gave_up"] == 0


def test_redis_losing_its_data_moves_no_token_backwards_and_runs_no_fire_twice(cassandra_up: None) -> None:
    _scenario(4)


def test_cassandra_outage_answers_unavailable_and_loses_nothing_accepted(own_cassandra: OwnCassandra) -> None:
    result = _scenario(5, own_cassandra=own_cassandra)
    assert result["submits"]["unavailable"] > 0


def test_sigterm_finishes_running_jobs_and_hands_shards_over_within_1s(cassandra_up: None, redis_up: None) -> None:
    _scenario(6)


def test_combined_faults_leave_no_fire_never_run_and_no_attempt_run_twice(own_cassandra: OwnCassandra) -> None:
    """Redis FLUSHALL, Cassandra frozen, the leader killed and restarted, a worker killed and
    replaced, in one run of once-jobs with default options (judged from the probe's calls)."""
    result = _scenario(7, own_cassandra=own_cassandra)
    print(f"fires run as a later attempt: {result['call_log']['ran_as_later_attempt']}")


# -- timeouts, retries, long runs cut off ---------------------------------------------------
@pytest.fixture
def probe_cluster(
    tmp_path: Path, cassandra_up: None, redis_up: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cluster, Path]]:
    cluster = secured(Cluster(name=f"faults_{uuid.uuid4().hex[:8]}", tmp=tmp_path, secure=True), monkeypatch)
    cluster.migrate()
    try:
        yield cluster, tmp_path / "exec"
    finally:
        cluster.stop()
        chaos_judge.drop_keyspace(cluster.cassandra, cluster.keyspace)


def _start_worker(cluster: Cluster, exec_dir: Path, worker_id: str) -> None:
    cluster.start_worker(worker_id, HOURGLASS_EXECUTORS=chaos_probe.SPEC, HOURGLASS_CHAOS_DIR=str(exec_dir))


def _spec(name: str, at: datetime, sleep: float, options: hourglass.JobOptions) -> hourglass.JobSpec:
    return hourglass.JobSpec(
        name=name, executor=chaos_probe.NAME, trigger=hourglass.OnceTrigger(at=at), options=options,
        params=hourglass.Payload(json.dumps({"sleep": sleep}).encode(), "application/json"),
    )  # fmt: skip


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_run_past_its_timeout_is_timed_out_cancelled_and_retried_with_exponential_backoff(
    probe_cluster: tuple[Cluster, Path],
) -> None:
    cluster, exec_dir = probe_cluster
    cluster.start_coordinator()
    _start_worker(cluster, exec_dir, "w1")
    options = hourglass.JobOptions(
        timeout=timedelta(milliseconds=500),
        retry=hourglass.RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1), multiplier=2.0),
    )
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, chaos_probe.NAME)
        job = client.submit(_spec("too-slow", datetime.now(UTC) + timedelta(seconds=2), 5.0, options))

        def all_attempts_done() -> bool:
            runs = client.runs(job.id).items
            return len(runs) == 3 and all(r.status.finished for r in runs)

        _wait(all_attempts_done, 45, "three timed-out attempts")
        runs = sorted(client.runs(job.id).items, key=lambda r: r.attempt)
    assert [r.status for r in runs] == [hourglass.RunStatus.TIMED_OUT] * 3
    for run in runs:  # ended at the timeout, not when the executor would have finished
        assert run.started_at is not None and run.ended_at is not None
        assert timedelta(milliseconds=400) <= run.ended_at - run.started_at < timedelta(seconds=2)
    # Equal jitter: the delay before attempt n+1 is within [base/2, base], base = 1 s * 2^(n-1).
    for earlier, later, base in ((runs[0], runs[1], 1.0), (runs[1], runs[2], 2.0)):
        assert earlier.ended_at is not None
        delay = (later.due - earlier.ended_at).total_seconds()
        assert base / 2 - 0.05 <= delay <= base + 0.05, (earlier, later)
    # The executor was cancelled: no attempt got past its sleep.
    calls = list(chaos_probe.read_calls(exec_dir))
    assert sorted(c.attempt for c in calls if c.kind == "S") == [1, 2, 3]
    assert not [c for c in calls if c.kind == "E"]


def test_long_runs_of_a_killed_worker_are_recorded_lost_and_retried_even_after_their_shards_moved(
    probe_cluster: tuple[Cluster, Path],
) -> None:
    """w1 runs 30 s jobs; w2 joins and takes half of the shards (gracefully: w1 keeps running
    what it claimed, and w2's checkpoint must wait for it); then w1 is killed. Every cut-off run,
    on a moved shard or not, is recorded LOST and retried as attempt 2 on w2."""
    cluster, exec_dir = probe_cluster
    cluster.start_coordinator()
    _start_worker(cluster, exec_dir, "w1")
    options = hourglass.JobOptions(retry=hourglass.RetryPolicy(max_attempts=2, initial_backoff=timedelta(milliseconds=200)))
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, chaos_probe.NAME)
        at = datetime.now(UTC) + timedelta(seconds=3)
        jobs = client.submit_many([_spec(f"long-{i}", at, 30.0, options) for i in range(24)])
        ids = {job.id for job in jobs}

        def started(attempt: int) -> set[str]:
            return {c.job_id for c in chaos_probe.read_calls(exec_dir) if c.kind == "S" and c.attempt == attempt}

        _wait(lambda: started(1) >= ids, 30, "every long run to start on w1")
        _start_worker(cluster, exec_dir, "w2")
        time.sleep(4)  # w2 joins, the shards are rebalanced, w2 reads and watches w1's claims
        cluster.kill_worker("w1", signal.SIGKILL)
        killed = time.monotonic()
        _wait(lambda: started(2) >= ids, 20, "every cut-off run to be retried")
        retried_after = time.monotonic() - killed

        def lost_recorded() -> bool:
            return all(
                any(r.attempt == 1 and r.status is hourglass.RunStatus.LOST for r in client.runs(job.id).items)
                for job in jobs
            )

        _wait(lost_recorded, 15, "every cut-off run to be recorded LOST")
    calls = [c for c in chaos_probe.read_calls(exec_dir) if c.kind == "S"]
    assert len([c for c in calls if c.attempt == 1]) == len(jobs), "an attempt ran twice"
    assert {c.worker for c in calls if c.attempt == 2} == {"w2"}
    # Its shards are leased again after its lease ttl; its claims are taken over once w2 has
    # held them for as long as w1 could have trusted its own lease (0.8 ttl; see Claimer).
    assert retried_after <= WORKER_TIMEOUT_S + 0.8 * WORKER_TIMEOUT_S + 3, retried_after
