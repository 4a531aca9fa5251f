from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.chaos_judge import drop_keyspace
from benchmarks.cluster import Cluster, new_cluster
from benchmarks.kafka_ingest import ensure_kafka
from benchmarks.secured_redis import SecuredRedis


def secured(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The test's clients (SDK and CLI read these variables) get through the cluster's mutual
    TLS with a token for every namespace."""
    for name, value in cluster.client_env().items():
        monkeypatch.setenv(name, value)
    return cluster


@pytest.fixture
def cluster(
    tmp_path: Path, cassandra_tls: str, secured_redis: SecuredRedis, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    """A cluster of real processes on Cassandra and Redis, secured as in production: mutual
    TLS between every process, bearer tokens on every call, Redis and Cassandra over TLS
    (Redis with an ACL user and password)."""
    name = request.node.name.removeprefix("test_")[:20]
    c = secured(new_cluster(tmp_path, name, secure=True, redis=secured_redis.url, store_options=cassandra_tls),
                monkeypatch)  # fmt: skip
    c.migrate()
    try:
        yield c
    finally:
        c.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(c.logs())
        # Dozens of leftover keyspaces slow every later schema change and flush of the node.
        drop_keyspace(c.cassandra, c.keyspace)


@pytest.fixture(scope="session")
def kafka() -> str:
    """The bootstrap address of a real Kafka broker: the one answering on $HOURGLASS_KAFKA_PORT
    (9092), or one scripts/services.sh starts (from Maven Central's jars on first use)."""
    try:
        return ensure_kafka()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
