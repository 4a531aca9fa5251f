"""The cluster seen through the API (ListWorkers, GetWorker, GetShardMap, ListCoordinators) on
real processes, Cassandra and Redis: a worker that joins shows with a fresh heartbeat and
its shards; one SIGKILLed turns dead within the worker timeout and its shards show their new
owner; one SIGTERMed shows leaving, then left, and is forgotten after the retention."""

from __future__ import annotations

import json
import signal
import socket
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

import hourglass
from benchmarks.cluster import Cluster
from hourglass import cli
from tests.e2e.waiting import first
from tests.e2e.workload import wait_for_executor

pytestmark = [pytest.mark.e2e, pytest.mark.cassandra]
T = TypeVar("T")
WORKER_TIMEOUT = timedelta(seconds=3)  # the cluster's default (Settings.worker_timeout)
RETENTION = "4s"  # how long dead and left workers stay listed, here


def _listed(client: hourglass.Client, worker_id: str) -> hourglass.WorkerStatus | None:
    return next((w for w in client.workers() if w.id == worker_id), None)


def _in_state(client: hourglass.Client, worker_id: str, state: hourglass.WorkerState) -> hourglass.WorkerStatus | None:
    worker = _listed(client, worker_id)
    return worker if worker is not None and worker.state is state else None


def _running(client: hourglass.Client, worker_id: str) -> hourglass.WorkerStatus | None:
    worker = _listed(client, worker_id)
    return worker if worker is not None and worker.runs_in_progress > 0 else None


def _balanced(client: hourglass.Client, cluster: Cluster, *workers: str) -> hourglass.ShardMapStatus | None:
    """The shard map once every shard's lease is held by the worker the map assigns it to,
    and only `workers` own shards."""
    status = client.shard_map()
    owners = {s.owner for s in status.shards}
    settled = all(s.owner and s.lease_holder == s.owner for s in status.shards)
    return status if settled and owners == set(workers) and len(status.shards) == cluster.num_shards else None


def test_a_joining_worker_shows_with_a_fresh_heartbeat_and_the_shard_leases_it_holds(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=10) as client:
        status = first("w1 owns every shard", lambda: _balanced(client, cluster, "w1"))
        worker = client.worker("w1")
        now = datetime.now(UTC)
        assert worker.state is hourglass.WorkerState.ALIVE and worker.host == socket.gethostname()
        assert now - worker.last_heartbeat < timedelta(seconds=1.5)  # heartbeats every 0.5 s
        assert worker.started_at is not None and worker.started_at <= worker.since <= now
        assert {"echo", "sleep", "http"} <= worker.executors and worker.capacity == 64
        assert worker.shards == {s.shard: s.token for s in status.shards}  # its leases, with their tokens
        [coordinator] = client.coordinators()
        assert coordinator.leader and worker.coordinator == coordinator.id == status.leader
        assert status.leader_token > 0 and status.leader_since == coordinator.leader_since
        lags = [s.checkpoint_lag for s in first("every shard checkpointed", lambda: _checkpointed(client))]
        assert all(lag is not None and lag < timedelta(seconds=10) for lag in lags), lags

        # What it ran in the last minute, as its replica counted it.
        wait_for_executor(client, "echo")
        at = datetime.now(UTC) + timedelta(seconds=1)
        client.submit_many([hourglass.JobSpec(f"tick-{i}", "echo", hourglass.OnceTrigger(at)) for i in range(5)])
        first("5 runs counted", lambda: client.worker("w1").ran_last_minute == 5 or None, timeout=15)
        assert client.worker("w1").lost_last_minute == 0

    assert cli.main(["--coordinator", cluster.address, "workers"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert row.split()[:2] == ["w1", "alive"] and "LAST BEAT" in header
    assert cli.main(["--coordinator", cluster.address, "shards", "--json"]) == 0
    assert {s["lease_holder"] for s in json.loads(capsys.readouterr().out)["shards"]} == {"w1"}


def _checkpointed(client: hourglass.Client) -> list[hourglass.ShardStatus] | None:
    shards = client.shard_map().shards
    return shards if all(s.checkpoint is not None for s in shards) else None


def test_a_killed_worker_turns_dead_within_the_worker_timeout_and_its_shards_show_their_new_owner(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator(HOURGLASS_DEAD_WORKER_RETENTION="5m")
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    with hourglass.Client(cluster.address, timeout=10) as client:
        before = first("both workers own shards", lambda: _balanced(client, cluster, "w1", "w2"))
        taken = {s.shard: s.token for s in before.shards if s.owner == "w1"}
        cluster.kill_worker("w1", signal.SIGKILL)
        killed = datetime.now(UTC)
        dead = first("w1 dead", lambda: _in_state(client, "w1", hourglass.WorkerState.DEAD))
        noticed = datetime.now(UTC)
        assert noticed - killed < WORKER_TIMEOUT + timedelta(seconds=1), noticed - killed
        assert abs(dead.since - dead.last_heartbeat - WORKER_TIMEOUT) < timedelta(milliseconds=100)  # dead from expiry

        after = first("w2 holds every shard", lambda: _balanced(client, cluster, "w2"))
        moved = {s.shard: s for s in after.shards if s.shard in taken}
        assert all(s.lease_holder == "w2" and s.token > taken[s.shard] for s in moved.values())  # newer tokens
        assert after.version > before.version
        assert set(client.worker("w2").shards) == set(range(cluster.num_shards))
        still = client.worker("w1")  # listed for the retention, with no lease left
        assert (still.state, still.shards) == (hourglass.WorkerState.DEAD, {})


def test_a_terminated_worker_shows_leaving_then_left_and_is_forgotten_after_the_retention(cluster: Cluster) -> None:
    cluster.start_coordinator(HOURGLASS_DEAD_WORKER_RETENTION=RETENTION)
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    with hourglass.Client(cluster.address, timeout=10) as client:
        first("both workers own shards", lambda: _balanced(client, cluster, "w1", "w2"))
        wait_for_executor(client, "sleep")
        # A run going when w1 is told to stop keeps it leaving (it finishes what it claimed).
        at = datetime.now(UTC) + timedelta(seconds=1)
        specs = [hourglass.JobSpec(f"nap-{i}", "sleep", hourglass.OnceTrigger(at), params=hourglass.json_params({"seconds": 3}))
                 for i in range(8)]  # fmt: skip
        client.submit_many(specs)
        first("w1 runs a nap", lambda: _running(client, "w1"), timeout=15)

        cluster.workers["w1"].send_signal(signal.SIGTERM)
        leaving = first("w1 leaving", lambda: _in_state(client, "w1", hourglass.WorkerState.LEAVING))
        assert leaving.runs_in_progress > 0
        first("w2 holds every shard", lambda: _balanced(client, cluster, "w2"))
        assert _in_state(client, "w1", hourglass.WorkerState.LEAVING)  # moved while its naps still run
        left = first("w1 left", lambda: _in_state(client, "w1", hourglass.WorkerState.LEFT))
        cluster.workers["w1"].wait(timeout=30)
        assert left.since > leaving.since and left.shards == {}
        gone = first("w1 forgotten", lambda: _listed(client, "w1") is None or None, timeout=10)
        assert gone and [w.id for w in client.workers()] == ["w2"]
        with pytest.raises(hourglass.WorkerNotFound):
            client.worker("w1")
