"""Coordination through a real Redis Sentinel set (primary, replica, three sentinels): the
primary SIGKILLed, the replica promoted, and a worker firing on with fencing tokens above every
token Cassandra recorded before."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import hourglass
from benchmarks.chaos_judge import checkpoint_tokens, drop_keyspace
from benchmarks.cluster import Cluster, free_port, new_cluster
from benchmarks.environment import recorded_runs
from benchmarks.sentinel_set import SentinelSet
from hourglass_core.leases.redis_connect import sync_client
from tests.e2e.workload import now, wait_for_executor

SHARDS = 4


def _until(done: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(why)
        time.sleep(0.2)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    ports = [free_port() for _ in range(5)]
    sentinel_set = SentinelSet(tmp_path, servers=(ports[0], ports[1]), sentinels=(ports[2], ports[3], ports[4]))
    try:
        sentinel_set.start()
        yield sentinel_set
    finally:
        sentinel_set.stop()


@pytest.fixture
def sentinel_cluster(tmp_path: Path, sentinels: SentinelSet) -> Iterator[Cluster]:
    cluster = new_cluster(tmp_path, "sentinel", redis=sentinels.url)
    cluster.num_shards = SHARDS
    cluster.migrate()
    try:
        yield cluster
    finally:
        cluster.stop()
        drop_keyspace(cluster.cassandra, cluster.keyspace)


def test_after_the_primary_is_killed_the_worker_fires_on_with_tokens_above_what_cassandra_saw(
    sentinels: SentinelSet, sentinel_cluster: Cluster
) -> None:
    cluster = sentinel_cluster
    address = cluster.start_coordinator()
    cluster.start_worker("w1")
    prefix = f"hg-{cluster.name}:"
    with hourglass.Client(address) as client:
        wait_for_executor(client, "echo")
        job = client.submit(hourglass.JobSpec(
            name="tick", executor="echo",
            trigger=hourglass.IntervalTrigger(every=timedelta(milliseconds=500), start=now() + timedelta(seconds=1)),
        ))  # fmt: skip
    _until(lambda: len(recorded_runs(cluster.cassandra, cluster.keyspace, {job.id})) >= 3, 30, "no runs before the kill")
    _until(lambda: len(checkpoint_tokens(cluster.cassandra, cluster.keyspace)) == SHARDS
           and min(checkpoint_tokens(cluster.cassandra, cluster.keyspace).values()) > 0, 30, "shards never taken")  # fmt: skip
    seen_before = max(checkpoint_tokens(cluster.cassandra, cluster.keyspace).values())

    old = sentinels.primary()
    sentinels.kill(old)
    killed = time.time()
    new = sentinels.wait_promoted(old)
    assert new != old
    # Replication is asynchronous: the promoted replica may lack the last lease grants and
    # counter increments. Take the worst case: it lacks all of them.
    primary = sync_client(sentinels.url, socket_timeout=2, decode_responses=True)
    try:
        primary.set(f"{prefix}fencing", 1)
        primary.delete(*(f"{prefix}lease:shard:{s}" for s in range(SHARDS)))

        def tokens_now() -> list[int]:
            values = primary.mget([f"{prefix}lease:shard:{s}" for s in range(SHARDS)])
            return [int(str(v).rpartition("|")[2]) for v in values if v]

        _until(lambda: len(tokens_now()) == SHARDS, 30, "shards not leased again after the failover")
        assert min(tokens_now()) > seen_before
    finally:
        primary.close()

    def ran_after_failover() -> list[dict[str, object]]:
        runs = recorded_runs(cluster.cassandra, cluster.keyspace, {job.id})
        return [r for r in runs if int(str(r["due"])) / 1e6 > killed + 3]

    _until(lambda: len(ran_after_failover()) >= 3, 30, "no fires after the failover")
    after = checkpoint_tokens(cluster.cassandra, cluster.keyspace)
    assert min(after.values()) > seen_before  # every shard's checkpoint written under a new token
    runs = recorded_runs(cluster.cassandra, cluster.keyspace, {job.id})
    assert max(Counter((r["due"], r["attempt"]) for r in runs).values()) == 1  # nothing ran twice
