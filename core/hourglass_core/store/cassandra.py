"""`CassandraStore`: the production `Store` (schema in migrations/cassandra/, one table per
access path; see that file for the tables and why they are shaped so)."""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from hourglass_core.credentials import Login
from hourglass_core.errors import (
    FailedPrecondition,
    HourglassError,
    InvalidArgument,
    JobNotFound,
    RunNotFound,
    StaleOwner,
    Unavailable,
)
from hourglass_core.firing import run_key_of
from hourglass_core.models import Fire, Job, JobEvent, JobFilter, JobState, NamespacePolicy, Page, Run, RunStatus
from hourglass_core.store import cassandra_schema as schema
from hourglass_core.store import codec
from hourglass_core.store.base import Checkpoint, Created
from hourglass_core.store.cassandra_created import CreatedIndex
from hourglass_core.store.cassandra_io import CqlSession, Row, open_session, unset_none
from hourglass_core.store.cassandra_statements import RUN_BY_JOB_COLUMNS, Statements
from hourglass_core.store.replication import Replication, simple

SINGLE_NODE = simple(1)

LIST_BUCKETS = 16  # fixed for a keyspace's life: a job's listing bucket is crc32(id) % 16
_MAX_TTL = 630_720_000  # Cassandra's limit (20 years)
_CLAIM_TTL_SLACK = 3600  # claims outlive their fire row, so an expiring row is never re-claimed
_BUCKETS_AT_ONCE = 8  # due_fires reads this many schedule buckets concurrently
_CLAIMS_PER_BATCH = 32  # ~150 bytes each: under the 5 KiB batch warning threshold
_KEYS_PER_READ = 100  # job ids looked up by one read
_JOB_ROW_BYTES = 700  # a new job's row without its params and labels, about
# Rows of several partitions share an unlogged batch up to Cassandra's
# unlogged_batch_across_partitions_warn_threshold (10), past which it warns on every batch.
_PARTITIONS_PER_BATCH = 10
_SHADOWED_UPDATE_ATTEMPTS = 5  # see update_job: the second attempt is a millisecond later
_POINTERS_PER_BATCH = 32  # listing and fire rows (~150 bytes each): under the 5 KiB warning
# Beyond this many bytes of params or result a job or run is not written as a batch (batches
# are refused over batch_size_fail_threshold, 50 KiB by default, and warned about over 5 KiB).
_BATCH_MAX_PAYLOAD = 2048
# Jobs or runs share a batch up to about this many bytes: below batch_size_warn_threshold (5 KiB
# by default), past which Cassandra logs a warning for every batch, synchronously, and each
# batch then costs more than separate writes.
_BATCH_BUDGET = 4800
# A run's rows without its result and error, as Cassandra counts them for that threshold (cells
# with their timestamps and TTLs): 680 bytes for a once-job's run with its completion, from the
# sizes it warned of when this was 450 (9,958 warned batches in a minute of firing at 1000/s).
_RUN_ROW_BYTES = 720
# A run's writes touch one partition key: its runs_by_job row and its job row share the key
# (namespace, job id), so Cassandra makes them one mutation. Past
# unlogged_batch_across_partitions_warn_threshold (10) it answers every unlogged batch with a
# warning, which the driver logs.
_RUNS_PER_BATCH = 10


def _conflict(job: Job, row: Row) -> HourglassError:
    """The error of an update whose condition failed, from the row Cassandra answered with."""
    if row.get("state") is None:
        return JobNotFound(job.namespace, job.id)
    return FailedPrecondition(
        f"job {job.id} changed meanwhile (now version {row.get('version') or 1}, {row['state']}): read it again"
    )


def _batch(kind: BatchType, writes: Sequence[tuple[Any, Sequence[Any]]]) -> BatchStatement:
    """One request carrying every (prepared statement, values) of `writes`: idempotent if each is."""
    batch = BatchStatement(batch_type=kind)
    for statement, values in writes:
        batch.add(statement, values)
    batch.is_idempotent = all(statement.is_idempotent for statement, _ in writes)
    return batch


def _packed(
    groups: Sequence[tuple[list[tuple[Any, Sequence[Any]]], int]], max_groups: int | None = None
) -> list[list[tuple[Any, Sequence[Any]]]]:
    """Whole groups of writes (each with its estimated bytes) packed in order into batches of
    at most _BATCH_BUDGET bytes and `max_groups` groups."""
    batches: list[list[tuple[Any, Sequence[Any]]]] = []
    size = count = 0
    for writes, cost in groups:
        if not batches or size + cost > _BATCH_BUDGET or (max_groups is not None and count >= max_groups):
            batches.append([])
            size = count = 0
        batches[-1].extend(writes)
        size += cost
        count += 1
    return batches


def _by_partition(
    rows: Sequence[tuple[tuple[Any, ...], tuple[Any, Sequence[Any]]]],
) -> list[list[tuple[Any, Sequence[Any]]]]:
    """Small rows, each given with its (table, partition key), in batches of at most
    _PARTITIONS_PER_BATCH partitions and _POINTERS_PER_BATCH rows, a partition's rows together
    (Cassandra applies them as one mutation)."""
    by_partition: dict[tuple[Any, ...], list[tuple[Any, Sequence[Any]]]] = {}
    for partition, write in rows:
        by_partition.setdefault(partition, []).append(write)
    batches: list[list[tuple[Any, Sequence[Any]]]] = []
    partitions = 0
    for writes in by_partition.values():
        for i in range(0, len(writes), _POINTERS_PER_BATCH):
            chunk = writes[i : i + _POINTERS_PER_BATCH]
            if not batches or partitions >= _PARTITIONS_PER_BATCH or len(batches[-1]) + len(chunk) > _POINTERS_PER_BATCH:
                batches.append([])
                partitions = 0
            batches[-1].extend(chunk)
            partitions += 1
    return batches


class CassandraStore:
    """The `Store` on Apache Cassandra. Build it with `connect`; call `migrate` once per
    deployment (it is idempotent) before using a fresh keyspace."""

    def __init__(
        self,
        cluster: Any,
        cql: CqlSession,
        keyspace: str,
        *,
        replication: Replication,
        run_retention: timedelta,
        bucket: timedelta,
    ) -> None:
        self._cluster = cluster
        self._cql = cql
        self._keyspace = keyspace
        self._replication = replication
        self._retention_s = math.ceil(run_retention.total_seconds())
        self._retention_us = codec.td_us(run_retention)
        self._bucket_us = codec.td_us(bucket)
        self._prepared: Statements | None = None
        self._created = CreatedIndex(cql, lambda: self._st, self._find_job)

    @classmethod
    async def connect(
        cls,
        hosts: list[str],
        port: int = 9042,
        keyspace: str = "hourglass",
        *,
        replication: Replication = SINGLE_NODE,
        run_retention: timedelta = timedelta(days=7),
        bucket: timedelta = timedelta(seconds=60),
        consistency: int = ConsistencyLevel.LOCAL_QUORUM,
        request_timeout: float = 10.0,
        login: Login | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> CassandraStore:
        """Connects (in a thread: the driver blocks) and, if the keyspace's schema is current,
        prepares every statement. `bucket` (the schedule's time-bucket width) must stay the
        same for a keyspace's life. Raises Unavailable if no host answers, ValueError for a
        bad keyspace name or bucket."""
        schema.check_keyspace(keyspace)
        if bucket <= timedelta(0) or run_retention <= timedelta(0):
            raise ValueError("bucket and run_retention must be positive")
        cluster, session = await open_session(hosts, port, consistency, request_timeout, login=login, tls=tls)
        store = cls(
            cluster,
            CqlSession(session),
            keyspace,
            replication=replication,
            run_retention=run_retention,
            bucket=bucket,
        )
        if await schema.current_version(store._cql, keyspace) == schema.latest_version():
            await store._prepare()
        return store

    async def _prepare(self) -> None:
        await self._cql.blocking(self._cql.session.set_keyspace, self._keyspace)
        self._prepared = await self._cql.blocking(Statements.prepare, self._cql.session.prepare)

    @property
    def _st(self) -> Statements:
        if self._prepared is None:
            raise HourglassError(
                f"keyspace {self._keyspace!r} has no current Hourglass schema: run migrate()"
            )
        return self._prepared

    async def migrate(self) -> int:
        version = await schema.migrate(self._cql, self._cluster, self._keyspace, self._replication)
        await self._prepare()
        await self._created.backfill()  # once: the jobs created before version 12
        return version

    async def close(self) -> None:
        await asyncio.to_thread(self._cluster.shutdown)

    async def ping(self) -> None:
        """One single-partition read of this keyspace at the store's consistency: replicas of
        our data answer, not just some node (system.local would), and the schema is there."""
        await self._cql.execute(f"SELECT version FROM {self._keyspace}.schema_migrations WHERE version = 1")

    # -- jobs -----------------------------------------------------------------------------
    async def create_jobs(self, jobs: Sequence[tuple[Job, Fire | None]]) -> list[Created]:
        """Writes, per job: first fire + listing row, then the job row.

        A keyed job's id derives from its key (`job_id_for_key`), so the key needs no row of
        its own: a job row stored under that id is the job the key made, and is returned with
        nothing written (one read of every keyed id first; no lightweight transaction). Two
        submits racing on one key both miss it and both write the one job (the later write
        wins, cell by cell), and the job's next fire decides which of their fire rows is live
        (the other is dropped as stale). A key never yields two jobs, and an accepted job is
        never lost.
        """
        stored = await self._stored_jobs({(job.namespace, job.id) for job, _ in jobs if job.idempotency_key})
        results: list[Created] = []
        fresh: list[tuple[Job, Fire | None]] = []
        first: dict[tuple[str, str], Job] = {}  # keyed jobs written by this call
        for job, fire in jobs:
            key = (job.namespace, job.id)
            if job.idempotency_key and (key in stored or key in first):
                results.append(Created(stored.get(key) or first[key], False))
                continue
            if job.idempotency_key:
                first[key] = job
            fresh.append((job, fire))
            results.append(Created(job, True))
        await self._write_jobs(fresh)
        return results

    async def _stored_jobs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Job]:
        """The stored jobs among `keys` ((namespace, id) pairs), by key."""
        by_namespace: dict[str, list[str]] = {}
        for namespace, job_id in keys:
            by_namespace.setdefault(namespace, []).append(job_id)
        found = await asyncio.gather(*(self.get_jobs(ns, ids) for ns, ids in by_namespace.items()))
        return {(ns, i): job for ns, jobs in zip(by_namespace, found, strict=True) for i, job in jobs.items()}

    async def _write_jobs(self, jobs: Sequence[tuple[Job, Fire | None]]) -> None:
        """Every job's first fire and listing row, then (once they are durable) its job row: a
        job row never exists without them, and a crash in between leaves only rows that point
        at no job (readers skip them; workers drop such a fire, see claiming.ORPHAN_ROW; the
        client's retry writes them again). Both steps go in UNLOGGED batches, rows grouped by
        partition: no batchlog write and delete, which a LOGGED batch costs Cassandra on every
        submit. A job with params too large for a batch is written on its own."""
        if not jobs:
            return
        pointers = [row for job, fire in jobs for row in self._job_pointers(job, fire)]
        small: list[tuple[list[tuple[Any, Sequence[Any]]], int]] = []
        large: list[tuple[Any, Sequence[Any]]] = []
        for job, _ in jobs:
            row = self._job_row(job)
            if len(job.params.data) > _BATCH_MAX_PAYLOAD:
                large.append(row)
            else:
                cost = _JOB_ROW_BYTES + len(job.params.data) + sum(len(k) + len(v) for k, v in job.labels.items())
                small.append(([row], cost))
        await self._unlogged(_by_partition(pointers))
        self._created.written([job for job, _ in jobs])
        await asyncio.gather(
            self._unlogged(_packed(small, max_groups=_PARTITIONS_PER_BATCH)), *(self._cql.execute(*r) for r in large)
        )

    async def _unlogged(self, batches: Sequence[list[tuple[Any, Sequence[Any]]]]) -> None:
        await asyncio.gather(*(self._cql.execute(_batch(BatchType.UNLOGGED, b)) for b in batches))

    def _job_pointers(self, job: Job, fire: Fire | None) -> list[tuple[tuple[Any, ...], tuple[Any, Sequence[Any]]]]:
        """The rows pointing at a new job, each with its partition: listings (by id, newest
        first) and first fire."""
        bucket = codec.list_bucket(job.id, LIST_BUCKETS)
        rows: list[tuple[tuple[Any, ...], tuple[Any, Sequence[Any]]]] = [
            (("jobs_by_bucket", job.namespace, bucket), (self._st.listing_insert, (job.namespace, bucket, job.id))),
            *self._created.rows(job),
        ]
        if fire is not None:
            rows.append(self._fire_row(fire))
        return rows

    def _fire_row(self, fire: Fire) -> tuple[tuple[Any, ...], tuple[Any, Sequence[Any]]]:
        """A fire's row, with its partition (for _by_partition)."""
        values = self._fire_values(fire)
        return ("fires", *values[:2]), (self._st.fire_put, values)

    def _job_row(self, job: Job) -> tuple[Any, Sequence[Any]]:
        cols = codec.narrow_job_columns(job)
        values = unset_none([cols[c] for c in (*codec.NARROW_COLUMNS, "spec")])
        return self._st.job_insert, (*values, codec.under_later_transactions_us())

    async def _find_job(self, namespace: str, job_id: str) -> Job | None:
        rows = await self._cql.execute(self._st.job_get, (namespace, job_id))
        if not rows or not codec.is_complete_job_row(rows[0]):
            return None  # a row holding only a late run update is not a job
        return codec.job_from_row(rows[0])

    async def get_jobs(self, namespace: str, job_ids: Sequence[str]) -> dict[str, Job]:
        """One read per _KEYS_PER_READ ids (IN on the partition key)."""
        unique = list(dict.fromkeys(job_ids))
        answers = await asyncio.gather(*(
            self._cql.execute(self._st.jobs_get, (namespace, unique[i : i + _KEYS_PER_READ]))
            for i in range(0, len(unique), _KEYS_PER_READ)
        ))  # fmt: skip
        return {
            row["id"]: codec.job_from_row(row)
            for rows in answers
            for row in rows
            if codec.is_complete_job_row(row)
        }

    async def get_job(self, namespace: str, job_id: str) -> Job:
        job = await self._find_job(namespace, job_id)
        if job is None:
            raise JobNotFound(namespace, job_id)
        return job

    async def list_jobs(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """Walks the listing buckets in order (ids ascending within each), reads the job rows
        concurrently and filters them. Examines at most ~10 pages' worth of ids per call: a
        sparse filter may then return a short (even empty) page with a token to go on."""
        if page_size <= 0:
            return Page([], page_token)
        bucket, after = 0, ""
        if page_token:
            pos = codec.decode_token(page_token, {"b": int, "a": str})
            bucket, after = pos["b"], pos["a"]
            if not 0 <= bucket < LIST_BUCKETS:
                raise InvalidArgument("page_token", "is not a token this server handed out")
        chunk = min(max(page_size, 50), 500)
        budget = max(10 * page_size, 1000)
        items: list[Job] = []
        while bucket < LIST_BUCKETS and budget > 0:
            want = min(chunk, budget)
            rows = await self._cql.execute(self._st.listing_slice, (namespace, bucket, after, want))
            ids = [r["id"] for r in rows]
            budget -= len(ids)
            jobs = await asyncio.gather(*(self._find_job(namespace, i) for i in ids))
            for job_id, job in zip(ids, jobs, strict=True):
                after = job_id
                if job is not None and flt.matches(job):
                    items.append(job)
                    if len(items) == page_size:
                        return Page(items, codec.encode_token({"b": bucket, "a": after}))
            if len(ids) < want:
                bucket, after = bucket + 1, ""  # this bucket is exhausted
        done = bucket >= LIST_BUCKETS
        return Page(items, "" if done else codec.encode_token({"b": bucket, "a": after}))

    async def list_jobs_newest(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """See CreatedIndex.page."""
        return await self._created.page(namespace, flt, page_size, page_token)

    async def set_job_state(
        self, namespace: str, job_id: str, state: JobState, next_fire: Fire | None, note: str = ""
    ) -> Job:
        await self.get_job(namespace, job_id)
        if next_fire is not None:
            await self.put_fire(next_fire)  # before the job points at it
        at = None if next_fire is None else codec.to_us(next_fire.at)
        await self._cql.execute(self._st.job_set_state, (state.value, at, note or None, namespace, job_id))
        return await self.get_job(namespace, job_id)

    async def delete_job(self, namespace: str, job_id: str) -> None:
        """The job row first, then its listing row: a crash in between leaves a listing entry
        pointing at no job, which readers skip (never a job missing from the listing). A
        worker's late write of a run's mirror cells is older than the deletion, so it stays
        deleted."""
        job = await self.get_job(namespace, job_id)
        await self._cql.execute(self._st.job_delete, (namespace, job_id))
        bucket = codec.list_bucket(job_id, LIST_BUCKETS)
        await asyncio.gather(self._cql.execute(self._st.listing_delete, (namespace, bucket, job_id)), self._created.delete(job))

    async def update_job(self, job: Job, expected: Job, next_fire: Fire | None) -> Job:
        """The next fire's row first (a stale row if the update then fails: dropped as such),
        then the job's columns, in a lightweight transaction over `expected`'s version and
        state.

        The transaction's cells get the server's timestamp, to the millisecond: the job's
        insert is stamped under it (codec.under_later_transactions_us), but with clocks apart
        (another node coordinating) they could still sort under the insert's cells: applied,
        yet the row still says `expected`. Read back, such an update is made again (same
        condition, later timestamp)."""
        if next_fire is not None:
            await self.put_fire(next_fire)
        cols = codec.narrow_job_columns(job)
        values = [cols[c] for c in codec.NARROW_UPDATE_COLUMNS]
        condition = (codec.stored_version(expected.version), expected.state.value)
        for _ in range(_SHADOWED_UPDATE_ATTEMPTS):
            applied, row = await self._cql.applied(self._st.job_update, (*values, job.namespace, job.id, *condition))
            if not applied:
                raise _conflict(job, row)
            stored = await self.get_job(job.namespace, job.id)
            if stored.version != expected.version:
                return stored
            await asyncio.sleep(0.001)
        raise Unavailable(f"job {job.id}: the update stayed under older cells; try again")

    async def record_job_event(self, event: JobEvent) -> None:
        cols = codec.job_event_columns(event)
        values = unset_none([cols[c] for c in codec.EVENT_COLUMNS])
        await self._cql.execute(self._st.job_event_put, (*values, self._retention_s))

    async def job_events(self, namespace: str, job_id: str, since: datetime, until: datetime) -> list[JobEvent]:
        rows = await self._cql.execute(
            self._st.job_events_between, (namespace, job_id, codec.to_us(since), codec.to_us(until))
        )
        return [codec.job_event_from(row) for row in rows]

    async def advance_schedule(self, job: Job, next_fire: Fire | None, *, read_at: datetime | None = None) -> None:
        """Moves the stored job's next fire from `job.next_fire_time` (the fire just claimed)
        on to `next_fire` only while the job is ACTIVE and still at that fire: a repeated call,
        or one racing a pause/cancel/resume that already moved the schedule, changes nothing.
        Completion (without `read_at`) is an LWT so it never overwrites a pause or cancel; moving
        the next fire is a plain write (a pause landing in between is harmless: workers drop
        fires of jobs that are not ACTIVE, and resume rewrites the next fire) whose write
        timestamp is the time of the read it was decided on: a worker paused between that read
        and the write (a GC pause, SIGSTOP) thus writes a value older than every later move,
        and cannot put the schedule back to a fire that already ran (which would end the
        job's chain of fires). With `read_at` (the claim was won) the job is not read again:
        one read less per fire; the time of the caller's read is the write timestamp, and
        completing is a plain write with it too (a lightweight transaction less per once-job):
        a pause, cancel or resume after the read wins; one before it was seen by the read (the
        fire was then not claimed); one racing the read itself, unseen and stamped earlier, is
        overwritten: the job's last fire runs and the job says COMPLETED."""
        if read_at is not None:
            await self.advance_schedules([(job, next_fire, read_at)])
            return
        decided = codec.now_us()
        stored = await self._find_job(job.namespace, job.id)
        if stored is None or stored.state is not JobState.ACTIVE:
            return
        if stored.next_fire_time != job.next_fire_time:
            return
        if next_fire is None:
            expected = codec.opt_us(job.next_fire_time)
            await self._cql.applied(
                self._st.job_complete,
                (JobState.COMPLETED.value, job.fired + 1, job.namespace, job.id, JobState.ACTIVE.value, expected),
            )
            return
        await self._move([(job, next_fire, decided)])

    async def advance_schedules(self, moves: Sequence[tuple[Job, Fire | None, datetime]]) -> None:
        """The moves of claim winners (see advance_schedule)."""
        await self._move([(job, nxt, codec.to_us(read_at)) for job, nxt, read_at in moves])

    async def _move(self, moves: Sequence[tuple[Job, Fire | None, int]]) -> None:
        """Moves each job on to its next fire (None: completes it), stamped with its decision
        time: the next fires' rows first and, once they are durable, the jobs' pointers to them,
        so a job never points at a missing row. Until its pointer lands a row is just ahead of
        its job's next fire, which workers look at again for a while (Later.MOVING) before
        taking it for stale; a claimer whose move failed keeps its claim unsettled and moves
        again. Unlogged batches by partition, not one LOGGED batch: a batchlog costs Cassandra
        a write and a delete per batch, and needs two live nodes besides the coordinator, so
        on a three-node ring every move stalled from a node's death until gossip convicted it
        (10-20 s)."""
        fires = [self._fire_row(nxt) for _, nxt, _ in moves if nxt is not None]
        if fires:
            await self._unlogged(_by_partition(fires))
        await self._unlogged(_by_partition([
            (("jobs", job.namespace, job.id), self._pointer_write(job, nxt, decided)) for job, nxt, decided in moves
        ]))  # fmt: skip

    def _pointer_write(self, job: Job, next_fire: Fire | None, decided: int) -> tuple[Any, Sequence[Any]]:
        """The write pointing `job` at `next_fire` (None: completing it), stamped `decided`."""
        if next_fire is None:
            return self._st.job_complete_at, (decided, JobState.COMPLETED.value, job.fired + 1, job.namespace, job.id)
        return self._st.job_set_next, (decided, codec.to_us(next_fire.at), job.fired + 1, job.namespace, job.id)

    # -- schedule -------------------------------------------------------------------------
    def _ttl_from_due(self, due_us: int, slack_s: int = 0) -> int:
        """Seconds a row about `due_us` must live: retention counted from due, not from now,
        so a fire written far ahead is still there when it comes due. 0 (no expiry) past
        Cassandra's 20-year TTL limit."""
        ttl = math.ceil((due_us - codec.now_us()) / 1e6) + self._retention_s + slack_s
        return 0 if ttl > _MAX_TTL else max(1, ttl)

    def _fire_values(self, fire: Fire) -> tuple[Any, ...]:
        due = codec.to_us(fire.due)
        nominal, overlap = codec.fire_extras(fire)
        return (
            fire.shard, due - due % self._bucket_us, due, fire.namespace, fire.job_id,
            fire.attempt, fire.kind.value, fire.priority,
            UNSET_VALUE if nominal is None else nominal, UNSET_VALUE if overlap is None else overlap,
            self._ttl_from_due(due),
        )  # fmt: skip

    async def put_fire(self, fire: Fire) -> None:
        await self._cql.execute(self._st.fire_put, self._fire_values(fire))

    async def put_fires(self, fires: Sequence[Fire]) -> None:
        """UNLOGGED batches of rows of one schedule partition each (idempotent rows)."""
        rows = [(("fires", *values[:2]), (self._st.fire_put, values)) for values in map(self._fire_values, fires)]
        await self._unlogged(_by_partition(rows))

    async def due_fires(
        self, shard: int, after: datetime, until: datetime, limit: int
    ) -> list[Fire]:
        """Reads the buckets overlapping (after, until] in order, a few at once, each by a
        bounded slice. Buckets entirely older than the retention are skipped: their rows
        have expired, and skipping them bounds a scan from a very old checkpoint."""
        oldest = codec.now_us() - self._retention_us - self._bucket_us
        lo, hi = max(codec.to_us(after), oldest), codec.to_us(until)
        if limit <= 0 or hi <= lo:
            return []
        starts = list(range(lo - lo % self._bucket_us, hi + 1, self._bucket_us))
        found: list[Fire] = []
        for i in range(0, len(starts), _BUCKETS_AT_ONCE):
            want = limit - len(found)
            slices = await asyncio.gather(*(
                self._cql.execute(self._st.fire_slice, (shard, start, lo, hi, want))
                for start in starts[i : i + _BUCKETS_AT_ONCE]
            ))  # fmt: skip
            for rows in slices:
                for row in rows:
                    found.append(codec.fire_from_columns(row, shard))
                    if len(found) == limit:
                        return found
        return found

    def _claim_key(self, fire: Fire) -> tuple[int, int, int, str, str, int]:
        """The claim row's primary key: the schedule partition of the instant the fire stands
        for (a backfilled fire's occurrence: so it shares the claim of the scheduled fire of
        that instant, and of every backfill of it), then the fire."""
        at = codec.to_us(fire.at)
        return (fire.shard, at - at % self._bucket_us, at, fire.namespace, fire.job_id, fire.attempt)

    def _claim_insert(self, fire: Fire, worker_id: str, token: int) -> tuple[Any, tuple[Any, ...]]:
        key = self._claim_key(fire)
        # From the later of both: a backfilled fire's claim outlives its release.
        ttl = self._ttl_from_due(max(key[2], codec.to_us(fire.due)), _CLAIM_TTL_SLACK)
        return self._st.claim, (*key, worker_id, token, codec.now_us(), ttl)

    async def claim_fire(self, fire: Fire, worker_id: str, token: int) -> bool:
        """LWT insert. The same (worker_id, token) claiming again gets True again, so a claim
        whose answer was lost (timeout) can be retried by its maker without losing the fire."""
        applied, row = await self._cql.applied(*self._claim_insert(fire, worker_id, token))
        return applied or (row.get("worker_id") == worker_id and row.get("fencing_token") == token)

    async def claim_fires(self, claims: Sequence[tuple[Fire, str, int]]) -> list[bool]:
        """Claims of one schedule partition go as conditional batches of up to
        _CLAIMS_PER_BATCH rows: one lightweight transaction for all of them. A batch applies
        only if none of its rows exists; when one does, Cassandra answers with the rows it
        found, whose claims are decided by their holder, and the rest go again without them."""
        won = [False] * len(claims)
        groups: dict[tuple[int, int], list[int]] = {}
        seen: set[tuple[Any, ...]] = set()
        repeats: list[int] = []  # the same fire twice in one call: claimed on its own, after
        for i, (fire, _, _) in enumerate(claims):
            key = self._claim_key(fire)
            if key in seen:
                repeats.append(i)
                continue
            seen.add(key)
            groups.setdefault(key[:2], []).append(i)

        async def claim_group(pending: list[int]) -> None:
            while pending:
                chunk, pending = pending[:_CLAIMS_PER_BATCH], pending[_CLAIMS_PER_BATCH:]
                if len(chunk) == 1:
                    won[chunk[0]] = await self.claim_fire(*claims[chunk[0]])
                    continue
                batch = _batch(BatchType.UNLOGGED, [self._claim_insert(*claims[i]) for i in chunk])
                rows = await self._cql.execute(batch)
                if rows and rows[0].get("[applied]"):
                    for i in chunk:
                        won[i] = True
                    continue
                found = {
                    (r["due"], r["namespace"], r["job_id"], r["attempt"]): r
                    for r in rows
                    if r.get("due") is not None and r.get("worker_id") is not None
                }
                if not found:  # no rows to tell which: one at a time
                    for i in chunk:
                        won[i] = await self.claim_fire(*claims[i])
                    continue
                retry = []
                for i in chunk:
                    fire, worker_id, token = claims[i]
                    row = found.get(self._claim_key(fire)[2:])
                    if row is None:
                        retry.append(i)
                    else:
                        won[i] = row["worker_id"] == worker_id and row["fencing_token"] == token
                pending = retry + pending

        await asyncio.gather(*(claim_group(indexes) for indexes in groups.values()))
        for i in repeats:
            won[i] = await self.claim_fire(*claims[i])
        return won

    async def steal_claim(self, fire: Fire, from_worker: str, to_worker: str, token: int) -> bool:
        """LWT: moves the claim only while `from_worker` still holds it."""
        key = self._claim_key(fire)
        ttl = self._ttl_from_due(max(key[2], codec.to_us(fire.due)), _CLAIM_TTL_SLACK)
        applied, _ = await self._cql.applied(self._st.claim_steal, (ttl, to_worker, token, *key, from_worker))
        return bool(applied)

    async def claim_owner(self, fire: Fire) -> str | None:
        rows = await self._cql.execute(self._st.claim_get, self._claim_key(fire))
        return str(rows[0]["worker_id"]) if rows else None

    async def load_checkpoint(self, shard: int) -> Checkpoint | None:
        rows = await self._cql.execute(self._st.checkpoint_get, (shard,))
        if not rows:
            return None
        return Checkpoint(shard, codec.from_us(rows[0]["at"]), rows[0]["fencing_token"])

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """LWT: update if the stored token is not larger, else insert if absent; a concurrent
        first insert sends us round again. An equal token may rewrite (the same owner)."""
        cp = checkpoint
        at = codec.to_us(cp.at)
        for _ in range(5):
            applied, row = await self._cql.applied(
                self._st.checkpoint_update, (at, cp.token, cp.shard, cp.token)
            )
            if applied:
                return
            if row.get("fencing_token") is not None:
                raise StaleOwner(
                    f"shard {cp.shard}: checkpoint token {row['fencing_token']} > {cp.token}"
                )
            applied, _ = await self._cql.applied(
                self._st.checkpoint_insert, (cp.shard, at, cp.token)
            )
            if applied:
                return
        raise Unavailable(f"shard {cp.shard}: checkpoint contended, try again")

    async def max_fencing_token(self) -> int:
        rows = await self._cql.execute(self._st.checkpoint_tokens)
        return max((r["fencing_token"] for r in rows), default=0)

    # -- runs -----------------------------------------------------------------------------
    async def record_run(self, run: Run) -> None:
        await self.record_runs([run])

    async def record_runs(self, runs: Sequence[Run]) -> None:
        """Writes each run's run-by-job row and its job's mirror cells, each with the write
        timestamp codec.run_write_timestamp(run): per cell, the event with the latest run time
        wins, so a late or repeated RUNNING can never overwrite a finished status (no LWT, no
        read). Small runs go together in UNLOGGED batches (a request's overhead costs Cassandra
        as much CPU as its rows): every write is idempotent (fixed timestamps) and the worker
        re-sends an event until it is acknowledged, so a partly applied batch is completed by
        the retry; a logged batch would add a batchlog write and delete. A run with a large
        result or error is written as separate writes instead, since batches are refused
        beyond batch_size_fail_threshold (50 KiB)."""
        small: list[tuple[list[tuple[Any, Sequence[Any]]], int]] = []
        alone: list[tuple[Any, Sequence[Any]]] = []
        for run in runs:
            payload = len(run.result.data) + len(run.error.encode())
            writes = self._run_writes(run)
            if payload > _BATCH_MAX_PAYLOAD:
                alone.extend(writes)
            else:
                small.append((writes, 2 * payload + _RUN_ROW_BYTES))
        batches = _packed(small, max_groups=_RUNS_PER_BATCH)
        await asyncio.gather(
            *(self._cql.execute(_batch(BatchType.UNLOGGED, b)) for b in batches),
            *(self._cql.execute(s, v) for s, v in alone),
        )

    def _run_writes(self, run: Run) -> list[tuple[Any, Sequence[Any]]]:
        ts = codec.run_write_timestamp(run, codec.now_us())
        cols = codec.run_columns(run)
        by_job = unset_none([cols[c] for c in RUN_BY_JOB_COLUMNS]) + [self._retention_s, ts]
        key = (run.namespace, run.job_id)
        writes: list[tuple[Any, Sequence[Any]]] = [(self._st.run_by_job_put, by_job)]
        if run.status is RunStatus.RUNNING:
            writes.append((self._st.job_run_started, unset_none([ts, cols["started_at"], run.worker_id, *key])))
            return writes + self._completion_writes(run)
        writes.append((self._st.job_run_finished, unset_none([ts, cols["ended_at"], run.status.value, *key])))
        if run.started_at is not None:  # as of its start, as a RUNNING event would have written it
            began = codec.to_us(run.started_at)
            writes.append((self._st.job_run_began, [began, began, run.worker_id, *key]))
        return writes + self._completion_writes(run)

    def _completion_writes(self, run: Run) -> list[tuple[Any, Sequence[Any]]]:
        """The job's completion a run carries: as the claim winner's move would have written
        it (see advance_schedule), in the run's partition key, so the same mutation."""
        done = run.completes
        if done is None:
            return []
        decided = codec.to_us(done.decided_at)
        return [(self._st.job_complete_at, (decided, JobState.COMPLETED.value, done.fired, run.namespace, run.job_id))]

    async def get_run(self, run_id: str) -> Run:
        """Read where its id says it is (see firing.run_id_for); an id of the older, random
        form from the table those runs were kept in until they expire."""
        key = run_key_of(run_id)
        if key is None:
            rows = await self._cql.execute(self._st.run_get_legacy, (run_id,))
        else:
            rows = await self._cql.execute(
                self._st.run_get, (key.namespace, key.job_id, codec.to_us(key.due), key.attempt)
            )
        if not rows:
            raise RunNotFound(run_id)
        return codec.run_from_columns(rows[0])

    async def list_runs(
        self, namespace: str, job_id: str, page_size: int, page_token: str
    ) -> Page[Run]:
        """Newest due first, then highest attempt; the token is the last (due, attempt) seen."""
        if page_size <= 0:
            return Page([], page_token)
        rows: list[Row]
        if page_token:
            pos = codec.decode_token(page_token, {"d": int, "a": int})
            rows = await self._cql.execute(
                self._st.runs_after, (namespace, job_id, pos["d"], pos["a"], page_size + 1)
            )
        else:
            rows = await self._cql.execute(self._st.runs_first, (namespace, job_id, page_size + 1))
        runs = [codec.run_from_columns(r) for r in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(runs)
        last = runs[-1]
        return Page(runs, codec.encode_token({"d": codec.to_us(last.due), "a": last.attempt}))

    # -- begun watermarks -----------------------------------------------------------------
    async def save_begun(self, worker_id: str, through: datetime) -> None:
        at = codec.to_us(through)
        await self._cql.execute(self._st.begun_put, (worker_id, at, at))

    async def load_begun(self, worker_id: str) -> datetime | None:
        rows = await self._cql.execute(self._st.begun_get, (worker_id,))
        return codec.from_us(rows[0]["through"]) if rows else None

    # -- executors ------------------------------------------------------------------------
    async def register_executors(self, names: Iterable[str]) -> None:
        now = codec.now_us()
        await asyncio.gather(
            *(self._cql.execute(self._st.executor_put, (n, now)) for n in set(names))
        )

    async def known_executors(self) -> set[str]:
        return {r["name"] for r in await self._cql.execute(self._st.executors_all)}

    # -- namespace policies ---------------------------------------------------------------
    async def set_namespace_policy(self, policy: NamespacePolicy) -> None:
        if policy.allowed_executors:
            await self._cql.execute(self._st.policy_put, (policy.namespace, set(policy.allowed_executors)))
        else:
            await self._cql.execute(self._st.policy_delete, (policy.namespace,))

    async def get_namespace_policy(self, namespace: str) -> NamespacePolicy:
        rows = await self._cql.execute(self._st.policy_get, (namespace,))
        return _policy_from_row(rows[0]) if rows else NamespacePolicy(namespace)

    async def namespace_policies(self) -> dict[str, NamespacePolicy]:
        return {r["namespace"]: _policy_from_row(r) for r in await self._cql.execute(self._st.policies_all)}


def _policy_from_row(row: Row) -> NamespacePolicy:
    return NamespacePolicy(row["namespace"], frozenset(row["allowed_executors"] or ()))
