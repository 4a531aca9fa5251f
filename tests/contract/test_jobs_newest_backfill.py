"""Cassandra's newest-first index (schema version 12) covers the jobs created before it: `db
migrate` indexes them once, recorded in data_migrations, and leaves it at that."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from hourglass_core.models import JobFilter
from hourglass_core.store import codec
from hourglass_core.store.base import Store
from hourglass_core.store.cassandra import CassandraStore
from hourglass_core.store.cassandra_created import BACKFILL, period_of
from tests.contract.test_store_contract import all_jobs, make_job, now

pytestmark = pytest.mark.cassandra


async def test_migrate_indexes_jobs_created_before_the_index_once(cassandra_store: Store, ns: str, shard: int) -> None:
    assert isinstance(cassandra_store, CassandraStore)
    start = now()
    batch = [make_job(ns, shard, name=f"old-{i}", created_at=start - timedelta(days=i)) for i in range(3)]
    await cassandra_store.create_jobs(batch)
    session = cassandra_store._cql.session  # as a store of schema version 11 left them: no index rows

    def forget() -> None:
        for job, _ in batch:
            created = codec.to_us(job.created_at)
            session.execute("DELETE FROM jobs_by_created WHERE namespace = %s AND period = %s AND created_at = %s AND id = %s",
                            (ns, period_of(created), created, job.id))  # fmt: skip
        session.execute("DELETE FROM job_periods WHERE namespace = %s", (ns,))
        session.execute("DELETE FROM data_migrations WHERE name = %s", (BACKFILL,))

    await asyncio.to_thread(forget)
    assert await all_jobs(cassandra_store, ns, JobFilter(), 10, newest=True) == []
    await cassandra_store.migrate()
    assert [j.name for j in await all_jobs(cassandra_store, ns, JobFilter(), 2, newest=True)] == ["old-0", "old-1", "old-2"]
    assert await cassandra_store._created.backfill() == 0, "done once: recorded"
