"""Fixtures of the contract suites: each backend is opened once per session, and every test
that asks for `store` runs once per backend.

Cassandra: HOURGLASS_CASSANDRA_HOSTS (comma-separated, default 127.0.0.1) and
HOURGLASS_CASSANDRA_PORT (default 9042); a fresh keyspace hg_contract_<random> per session,
migrated once and dropped at the end. An unreachable Cassandra FAILS the Cassandra tests
(it is never skipped): start it with `bash scripts/services.sh start`.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from benchmarks.cassandra_login import cql_cluster, login, store_url
from hourglass_core.errors import Unavailable
from hourglass_core.store.base import Store

CASSANDRA_HOSTS = [
    h.strip() for h in os.environ.get("HOURGLASS_CASSANDRA_HOSTS", "127.0.0.1").split(",") if h
]
CASSANDRA_PORT = int(os.environ.get("HOURGLASS_CASSANDRA_PORT", "9042"))


async def _open_cassandra(keyspace: str) -> Store:
    from hourglass_core.store.cassandra import CassandraStore

    try:
        store = await CassandraStore.connect(CASSANDRA_HOSTS, CASSANDRA_PORT, keyspace, login=login())
    except Unavailable as exc:
        pytest.fail(
            f"Cassandra is not reachable at {','.join(CASSANDRA_HOSTS)}:{CASSANDRA_PORT} "
            f"({exc}). Start it with `bash scripts/services.sh start`, or point "
            "HOURGLASS_CASSANDRA_HOSTS / HOURGLASS_CASSANDRA_PORT at a running node.",
            pytrace=False,
        )
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store


def _drop_keyspace(keyspace: str) -> None:
    cluster = cql_cluster(f"{CASSANDRA_HOSTS[0]}:{CASSANDRA_PORT}")
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    from hourglass_core.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path_factory.mktemp("store") / "contract.db")
    await store.migrate()
    yield store
    await store.close()


@pytest_asyncio.fixture
async def fresh_sqlite_store() -> AsyncIterator[Store]:
    """An empty in-memory embedded store of one test's own, offering the `echo` executor."""
    from hourglass_core.store.factory import open_store

    store = await open_store("sqlite://:memory:", migrate=True)
    await store.register_executors(frozenset({"echo"}))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="session")
def cassandra_keyspace() -> str:
    return f"hg_contract_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def cassandra_url(cassandra_keyspace: str) -> str:
    """A store URL of the session's Cassandra keyspace (for tests that open a second client)."""
    return store_url(f"{','.join(CASSANDRA_HOSTS)}:{CASSANDRA_PORT}", cassandra_keyspace, ["rf=1"])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cassandra_store(cassandra_keyspace: str) -> AsyncIterator[Store]:
    try:
        store = await _open_cassandra(cassandra_keyspace)
        yield store
        await store.close()
    finally:  # also when migrate failed half-way: no keyspace is left behind
        await asyncio.to_thread(_drop_keyspace, cassandra_keyspace)


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store(request: pytest.FixtureRequest) -> Store:
    """The store under test: every test using it runs once per backend."""
    backend: Store = request.getfixturevalue(f"{request.param}_store")
    return backend


@pytest.fixture
def ns() -> str:
    """A namespace of this test alone: tests share the session's store but not its data."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def shard() -> int:
    """A shard number of this test alone (real deployments use 0..num_shards-1)."""
    return random.randrange(1_000_000, 2**31 - 1)
