"""A namespace's jobs newest first in Cassandra (tables jobs_by_created and job_periods, version 12).

jobs_by_created holds (created_at, id) per namespace and 10-minute period, newest first;
job_periods the periods that have any, newest first. A page walks from the period it is at to
the next older period with jobs, slicing each by (created_at, id) and reading the job rows, as list_jobs does with
its buckets: bounded work per page, never a scan. A job's index row is written with its
listing row (the period's mark once per process and period), deleted with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hourglass_core.models import Job, JobFilter, Page
from hourglass_core.store import codec
from hourglass_core.store.cassandra_io import CqlSession
from hourglass_core.store.cassandra_statements import Statements

log = logging.getLogger(__name__)
PERIOD_US = 600_000_000  # 10 minutes: at 1,000 submits/s a partition holds 600,000 rows (~25 MiB)
NEWEST = 2**63 - 1  # a position before every created_at
PERIODS_AT_ONCE = 8
MARKED_MAX = 10_000  # (namespace, period) marks remembered; past this the memory starts again
BACKFILL = "jobs_by_created"  # its data_migrations row
SCAN_PAGE = 500

Row = tuple[tuple[Any, ...], tuple[Any, Any]]  # (table and partition, (statement, values))
FindJob = Callable[[str, str], Awaitable[Job | None]]


def period_of(created_us: int) -> int:
    return created_us // PERIOD_US


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page stopped: the period, and the last (created_at, id) read in it."""

    period: int
    before: int = NEWEST
    after: str = ""

    def token(self) -> str:
        return codec.encode_token({"d": self.period, "c": self.before, "a": self.after})

    @classmethod
    def of(cls, token: str) -> Position:
        if not token:
            return cls(period_of(NEWEST))
        pos = codec.decode_token(token, {"d": int, "c": int, "a": str})
        return cls(pos["d"], pos["c"], pos["a"])


class CreatedIndex:
    def __init__(self, cql: CqlSession, statements: Callable[[], Statements], find_job: FindJob) -> None:
        self._cql = cql
        self._statements = statements
        self._find_job = find_job
        self._marked: set[tuple[str, int]] = set()

    def rows(self, job: Job) -> list[Row]:
        """The index rows of a new job (its period's mark unless already written here)."""
        st = self._statements()
        created = codec.to_us(job.created_at)
        period = period_of(created)
        index = (st.created_insert, (job.namespace, period, created, job.id))
        rows: list[Row] = [(("jobs_by_created", job.namespace, period), index)]
        if (job.namespace, period) not in self._marked:
            rows.append((("job_periods", job.namespace), (st.period_mark, (job.namespace, period))))
        return rows

    def written(self, jobs: list[Job]) -> None:
        """The jobs' index rows are durable: their periods need no mark again."""
        if len(self._marked) > MARKED_MAX:
            self._marked.clear()
        self._marked.update((job.namespace, period_of(codec.to_us(job.created_at))) for job in jobs)

    async def delete(self, job: Job) -> None:
        created = codec.to_us(job.created_at)
        await self._cql.execute(self._statements().created_delete, (job.namespace, period_of(created), created, job.id))

    async def page(self, namespace: str, flt: JobFilter, size: int, token: str) -> Page[Job]:
        """Up to `size` matching jobs from `token` on, newest first; reads at most ~10 pages'
        worth of index rows, so a sparse filter may give a short page with a token."""
        if size <= 0:
            return Page([], token)
        st = self._statements()
        at = Position.of(token)
        chunk, budget = min(max(size, 50), 500), max(10 * size, 1000)
        items: list[Job] = []
        while budget > 0:
            periods = [r["period"] for r in await self._cql.execute(st.periods_from, (namespace, at.period, PERIODS_AT_ONCE))]
            if not periods:
                return Page(items)
            for period in periods:
                if period != at.period:
                    at = Position(period)
                exhausted = False
                while budget > 0 and not exhausted:
                    want = min(chunk, budget)
                    rows = await self._cql.execute(st.created_slice, (namespace, period, at.before, at.after, want))
                    budget -= len(rows)
                    jobs = await asyncio.gather(*(self._find_job(namespace, r["id"]) for r in rows))
                    for row, job in zip(rows, jobs, strict=True):
                        at = Position(period, row["created_at"], row["id"])
                        if job is not None and flt.matches(job):
                            items.append(job)
                            if len(items) == size:
                                return Page(items, at.token())
                    exhausted = len(rows) < want
                if not exhausted:
                    return Page(items, at.token())
                at = Position(period - 1)
        return Page(items, at.token())

    async def backfill(self, now: datetime | None = None) -> int:
        """Indexes every stored job (a scan of the jobs table, by token ranges), once per
        keyspace: `hourglass db migrate` runs it after version 12, for the jobs created
        before. Idempotent. Returns the number of jobs indexed (0 when already done)."""
        st = self._statements()
        if await self._cql.execute(st.data_migration_get, (BACKFILL,)):
            return 0
        token, indexed = -(2**63), 0
        while True:
            rows = await self._cql.execute(st.jobs_scan, (token, SCAN_PAGE))
            writes = []
            for row in rows:
                token = row["t"]
                if row["created_at"] is None:  # a row holding only a late run update is not a job
                    continue
                period = period_of(row["created_at"])
                writes.append(self._cql.execute(st.created_insert, (row["namespace"], period, row["created_at"], row["id"])))
                writes.append(self._cql.execute(st.period_mark, (row["namespace"], period)))
            await asyncio.gather(*writes)
            indexed += len(writes) // 2
            if len(rows) < SCAN_PAGE:
                break
        await self._cql.execute(st.data_migration_done, (BACKFILL, now or datetime.now(UTC)))
        if indexed:
            log.info("indexed %d jobs created before schema version 12 (newest first)", indexed)
        return indexed
