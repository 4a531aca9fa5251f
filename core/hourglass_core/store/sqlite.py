"""`SqliteStore`: the embedded `Store` (one machine, one file), same contract as Cassandra's.

One connection, used only from one dedicated thread: every call runs there, so the event loop
never blocks on disk and SQLite never sees two threads. Each write is one transaction.

Durability: WAL with synchronous=FULL, so a committed transaction survives power loss too
("nothing accepted is lost"); NORMAL would be faster but may lose the last commits on power
failure, which is exactly the window in which a client has been told "accepted".
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from hourglass_core.errors import FailedPrecondition, JobNotFound, RunNotFound, StaleOwner, Unavailable
from hourglass_core.models import Fire, Job, JobEvent, JobFilter, JobState, NamespacePolicy, Page, Run, RunStatus
from hourglass_core.store import codec, migrations
from hourglass_core.store import sqlite_sql as sql
from hourglass_core.store.base import Checkpoint, Created

T = TypeVar("T")
_CLAIM_SLACK_US = 3600 * 1_000_000  # as in Cassandra: claims outlive their fire rows


_NEWEST = 2**63 - 1  # before every created_at: the first page of list_jobs_newest


class SqliteStore:
    """The `Store` on a SQLite file (or ":memory:"). Call `migrate` before first use."""

    def __init__(
        self,
        path: str | Path,
        *,
        run_retention: timedelta = timedelta(days=7),
        purge_every: timedelta = timedelta(minutes=10),
    ) -> None:
        self._path = str(path)
        self._retention_us = codec.td_us(run_retention)
        self._purge_every_s = purge_every.total_seconds()
        self._last_purge = time.monotonic()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hourglass-sqlite")
        self._conn: sqlite3.Connection | None = None  # opened on the store's thread

    # -- plumbing (everything below runs on the store's thread) ---------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" in text or "busy" in text or "disk i/o" in text or "unable to open" in text:
                raise Unavailable(f"sqlite {self._path}: {exc}") from exc
            raise

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)  # we issue BEGIN ourselves
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 5000")  # another process holding the write lock
            self._conn = conn
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _purge(self, db: sqlite3.Connection) -> None:
        """Deletes expired runs, fires and claims, at most once per purge_every."""
        if time.monotonic() - self._last_purge < self._purge_every_s:
            return
        self._last_purge = time.monotonic()
        for statement in sql.PURGE:
            db.execute(statement, {"now": codec.now_us()})

    # -- schema ---------------------------------------------------------------------------
    async def migrate(self) -> int:
        return await self._call(self._migrate)

    def _migrate(self) -> int:
        self._db().execute(sql.VERSIONS_TABLE)
        applied = {r[0] for r in self._db().execute("SELECT version FROM schema_migrations")}
        for migration in migrations.load("sqlite"):
            if migration.version in applied:
                continue
            with self._tx() as db:  # DDL is transactional in SQLite: all of it or none
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(sql.VERSION_INSERT, {
                    "version": migration.version, "name": migration.name,
                    "applied_at": codec.now_us()})  # fmt: skip
            applied.add(migration.version)
        return max(applied, default=0)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(_close)
        self._thread.shutdown(wait=True)

    async def ping(self) -> None:
        """A read on the store's thread: also tells that the thread is not stuck."""
        await self._call(lambda: self._db().execute("SELECT 1").fetchone())

    # -- jobs -----------------------------------------------------------------------------
    async def create_jobs(self, jobs: Sequence[tuple[Job, Fire | None]]) -> list[Created]:
        """One transaction: every job of the batch and its first fire, or nothing."""
        return await self._call(self._create_jobs, list(jobs))

    def _create_jobs(self, jobs: list[tuple[Job, Fire | None]]) -> list[Created]:
        results: list[Created] = []
        with self._tx() as db:
            for job, fire in jobs:
                if job.idempotency_key:  # the key made the job stored under the id it gives
                    stored = _find_job(db, job.namespace, job.id)
                    if stored is not None:
                        results.append(Created(stored, False))
                        continue
                if fire is not None:
                    self._put_fire(db, fire)
                cols = codec.job_columns(job)
                cols["labels"] = json.dumps(cols["labels"], sort_keys=True)
                db.execute(sql.JOB_INSERT, cols)
                results.append(Created(job, True))
        return results

    async def get_job(self, namespace: str, job_id: str) -> Job:
        return await self._call(lambda: _require_job(self._db(), namespace, job_id))

    async def get_jobs(self, namespace: str, job_ids: Sequence[str]) -> dict[str, Job]:
        def _get() -> dict[str, Job]:
            db = self._db()
            found = {i: _find_job(db, namespace, i) for i in job_ids}
            return {i: job for i, job in found.items() if job is not None}

        return await self._call(_get)

    async def list_jobs(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """Jobs by id; examines at most ~10 pages' worth of rows per call (labels are filtered
        after reading), so a sparse label filter may return a short page with a token."""
        after = codec.decode_token(page_token, {"a": str})["a"] if page_token else ""
        if page_size <= 0:
            return Page([], page_token)
        return await self._call(self._list_jobs, sql.JOB_PAGE, namespace, flt, page_size, {"after": after})

    async def list_jobs_newest(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """As list_jobs, by (created_at, id) descending, over the jobs_by_created index."""
        pos = codec.decode_token(page_token, {"c": int, "a": str}) if page_token else {"c": _NEWEST, "a": ""}
        if page_size <= 0:
            return Page([], page_token)
        return await self._call(self._list_jobs, sql.JOB_PAGE_NEWEST, namespace, flt, page_size,
                                {"before": pos["c"], "after": pos["a"]})  # fmt: skip

    def _list_jobs(self, query: str, namespace: str, flt: JobFilter, size: int, position: dict[str, Any]) -> Page[Job]:
        """Pages of `query` from `position` (its keyset: "after", and "before" when newest
        first), filtered, until `size` jobs or the budget of rows read."""
        budget = max(10 * size, 1000)
        chunk = min(max(size, 50), 500)
        items: list[Job] = []
        params = {
            "namespace": namespace,
            "state": None if flt.state is None else flt.state.value,
            "prefix": flt.name_prefix,
        }
        newest = "before" in position

        def token() -> str:
            return codec.encode_token({"c": position["before"], "a": position["after"]} if newest else {"a": position["after"]})

        while budget > 0:
            want = min(chunk, budget)
            rows = self._db().execute(query, {**params, **position, "limit": want})
            jobs = [_job_from_row(r) for r in rows]
            budget -= len(jobs)
            for job in jobs:
                position = {"before": codec.to_us(job.created_at), "after": job.id} if newest else {"after": job.id}
                if flt.matches(job):
                    items.append(job)
                    if len(items) == size:
                        return Page(items, token())
            if len(jobs) < want:
                return Page(items)
        return Page(items, token())

    async def set_job_state(
        self, namespace: str, job_id: str, state: JobState, next_fire: Fire | None, note: str = ""
    ) -> Job:
        return await self._call(self._set_job_state, namespace, job_id, state, next_fire, note)

    def _set_job_state(
        self, namespace: str, job_id: str, state: JobState, next_fire: Fire | None, note: str
    ) -> Job:
        with self._tx() as db:
            _require_job(db, namespace, job_id)
            if next_fire is not None:
                self._put_fire(db, next_fire)
            db.execute(sql.JOB_SET_STATE, {
                "state": state.value, "namespace": namespace, "id": job_id, "note": note or None,
                "next": None if next_fire is None else codec.to_us(next_fire.at)})  # fmt: skip
            return _require_job(db, namespace, job_id)

    async def update_job(self, job: Job, expected: Job, next_fire: Fire | None) -> Job:
        cols = codec.job_columns(job)
        values = {c: cols[c] for c in codec.UPDATE_COLUMNS}
        values["labels"] = json.dumps(values["labels"], sort_keys=True)
        key = {"namespace": job.namespace, "id": job.id}

        def _update() -> Job:
            with self._tx() as db:
                stored = _require_job(db, job.namespace, job.id)
                if (stored.version, stored.state) != (expected.version, expected.state):
                    raise FailedPrecondition(
                        f"job {job.id} changed meanwhile (now version {stored.version}, {stored.state.value}): read it again"
                    )
                if next_fire is not None:
                    self._put_fire(db, next_fire)
                db.execute(sql.JOB_UPDATE, {**values, **key})
                return _require_job(db, job.namespace, job.id)

        return await self._call(_update)

    async def record_job_event(self, event: JobEvent) -> None:
        row = {**codec.job_event_columns(event), "expires_at": codec.to_us(event.at) + self._retention_us}

        def _put() -> None:
            with self._tx() as db:
                db.execute(sql.JOB_EVENT_PUT, row)

        await self._call(_put)

    async def job_events(self, namespace: str, job_id: str, since: datetime, until: datetime) -> list[JobEvent]:
        params = {"namespace": namespace, "job_id": job_id, "since": codec.to_us(since), "until": codec.to_us(until),
                  "now": codec.now_us()}  # fmt: skip

        def _read() -> list[JobEvent]:
            return [codec.job_event_from(dict(r)) for r in self._db().execute(sql.JOB_EVENTS_BETWEEN, params)]

        return await self._call(_read)

    async def delete_job(self, namespace: str, job_id: str) -> None:
        def _delete() -> None:
            with self._tx() as db:
                _require_job(db, namespace, job_id)
                db.execute(sql.JOB_DELETE, {"namespace": namespace, "id": job_id})

        await self._call(_delete)

    async def advance_schedule(self, job: Job, next_fire: Fire | None, *, read_at: datetime | None = None) -> None:
        """As CassandraStore.advance_schedule (acts only while the stored job is ACTIVE and
        still at job.next_fire_time), here atomically in one transaction; the check is cheap
        here, so it is made whether or not `read_at` is given."""
        await self._call(self._advance_schedule, job, next_fire)

    async def advance_schedules(self, moves: Sequence[tuple[Job, Fire | None, datetime]]) -> None:
        def _advance_all() -> None:
            for job, next_fire, _ in moves:
                self._advance_schedule(job, next_fire)

        await self._call(_advance_all)

    def _advance_schedule(self, job: Job, next_fire: Fire | None) -> None:
        with self._tx() as db:
            stored = _find_job(db, job.namespace, job.id)
            if stored is None or stored.state is not JobState.ACTIVE:
                return
            if stored.next_fire_time != job.next_fire_time:
                return
            key = {"namespace": job.namespace, "id": job.id}
            if next_fire is None:
                db.execute(sql.JOB_COMPLETE, {**key, "fired": job.fired + 1})
                return
            self._put_fire(db, next_fire)
            db.execute(sql.JOB_SET_NEXT, {**key, "next": codec.to_us(next_fire.at), "fired": job.fired + 1})

    @staticmethod
    def _complete(db: sqlite3.Connection, run: Run, fired: int) -> None:
        """The completion a run carries (see Run.completes): only while the job is still
        ACTIVE at the run's fire, as advance_schedule checks (here in the same transaction)."""
        stored = _find_job(db, run.namespace, run.job_id)
        if stored is not None and stored.state is JobState.ACTIVE and stored.next_fire_time == run.due:
            db.execute(sql.JOB_COMPLETE, {"namespace": run.namespace, "id": run.job_id, "fired": fired})

    # -- schedule -------------------------------------------------------------------------
    async def put_fire(self, fire: Fire) -> None:
        def _put() -> None:
            with self._tx() as db:
                self._put_fire(db, fire)
                self._purge(db)

        await self._call(_put)

    async def put_fires(self, fires: Sequence[Fire]) -> None:
        def _put_all() -> None:
            with self._tx() as db:
                for fire in fires:
                    self._put_fire(db, fire)

        await self._call(_put_all)

    def _put_fire(self, db: sqlite3.Connection, fire: Fire) -> None:
        due = codec.to_us(fire.due)
        db.execute(sql.FIRE_PUT, {
            "shard": fire.shard, "due": due, "namespace": fire.namespace,
            "job_id": fire.job_id, "attempt": fire.attempt, "kind": fire.kind.value,
            "priority": fire.priority, "expires_at": due + self._retention_us,
            **dict(zip(("nominal", "overlap"), codec.fire_extras(fire), strict=True))})  # fmt: skip

    async def due_fires(
        self, shard: int, after: datetime, until: datetime, limit: int
    ) -> list[Fire]:
        if limit <= 0 or until <= after:
            return []

        def _slice() -> list[Fire]:
            rows = self._db().execute(sql.FIRE_SLICE, {
                "shard": shard, "after": codec.to_us(after), "until": codec.to_us(until),
                "limit": limit})  # fmt: skip
            return [codec.fire_from_columns(r, shard) for r in rows]

        return await self._call(_slice)

    async def claim_fire(self, fire: Fire, worker_id: str, token: int) -> bool:
        return (await self.claim_fires([(fire, worker_id, token)]))[0]

    async def claim_fires(self, claims: Sequence[tuple[Fire, str, int]]) -> list[bool]:
        """One transaction. The same (worker_id, token) claiming again gets True again (as in
        Cassandra)."""
        now = codec.now_us()
        rows = []
        for fire, worker_id, token in claims:
            key = _claim_key(fire)
            due = max(key["due"], codec.to_us(fire.due))  # a backfilled fire's claim outlives its release
            rows.append((key, {**key, "worker_id": worker_id, "fencing_token": token, "claimed_at": now,
                               "expires_at": due + self._retention_us + _CLAIM_SLACK_US}))  # fmt: skip

        def _claim() -> list[bool]:
            won = []
            with self._tx() as db:
                for key, claim in rows:
                    db.execute(sql.CLAIM, claim)
                    row = db.execute(sql.CLAIM_GET, key).fetchone()
                    won.append(bool(row["worker_id"] == claim["worker_id"] and row["fencing_token"] == claim["fencing_token"]))
                self._purge(db)
            return won

        return await self._call(_claim)

    async def steal_claim(self, fire: Fire, from_worker: str, to_worker: str, token: int) -> bool:
        params = {**_claim_key(fire), "from_worker": from_worker, "to_worker": to_worker, "fencing_token": token}

        def _steal() -> bool:
            with self._tx() as db:
                return db.execute(sql.CLAIM_STEAL, params).rowcount == 1

        return await self._call(_steal)

    async def claim_owner(self, fire: Fire) -> str | None:
        key = _claim_key(fire)

        def _owner() -> str | None:
            row = self._db().execute(sql.CLAIM_GET, key).fetchone()
            return None if row is None else str(row["worker_id"])

        return await self._call(_owner)

    async def load_checkpoint(self, shard: int) -> Checkpoint | None:
        def _load() -> Checkpoint | None:
            row = self._db().execute(sql.CHECKPOINT_GET, {"shard": shard}).fetchone()
            return None if row is None else Checkpoint(
                shard, codec.from_us(row["at"]), row["fencing_token"])  # fmt: skip

        return await self._call(_load)

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        cp = checkpoint

        def _save() -> None:
            with self._tx() as db:
                row = db.execute(sql.CHECKPOINT_GET, {"shard": cp.shard}).fetchone()
                if row is not None and row["fencing_token"] > cp.token:
                    raise StaleOwner(
                        f"shard {cp.shard}: checkpoint token {row['fencing_token']} > {cp.token}"
                    )
                db.execute(sql.CHECKPOINT_PUT, {
                    "shard": cp.shard, "at": codec.to_us(cp.at), "fencing_token": cp.token})

        await self._call(_save)

    async def max_fencing_token(self) -> int:
        return await self._call(lambda: int(self._db().execute(sql.MAX_TOKEN).fetchone()[0]))

    # -- runs -----------------------------------------------------------------------------
    async def record_run(self, run: Run) -> None:
        await self.record_runs([run])

    async def record_runs(self, runs: Sequence[Run]) -> None:
        """One transaction: each run and its job mirror, each applied only if the event is not
        older than what is stored (codec.run_write_timestamp), as in Cassandra."""
        now = codec.now_us()
        writes: list[tuple[str, dict[str, Any]]] = []
        for run in runs:
            ts = codec.run_write_timestamp(run, now)
            cols = {**codec.run_columns(run), "ts": ts, "expires_at": now + self._retention_us}
            key = {"namespace": run.namespace, "id": run.job_id, "ts": ts}
            writes.append((sql.RUN_UPSERT, cols))
            if run.status is RunStatus.RUNNING:
                writes.append((sql.JOB_RUN_STARTED, {
                    **key, "at": cols["started_at"], "worker": run.worker_id}))  # fmt: skip
            else:
                writes.append((sql.JOB_RUN_FINISHED, {**key, "at": cols["ended_at"], "status": run.status.value}))
                if run.started_at is not None:  # as of its start, as a RUNNING event would have written it
                    began = {**key, "ts": cols["started_at"], "at": cols["started_at"], "worker": run.worker_id}
                    writes.append((sql.JOB_RUN_BEGAN, began))

        def _record() -> None:
            with self._tx() as db:
                for statement, params in writes:
                    db.execute(statement, params)
                for run in runs:
                    if run.completes is not None:
                        self._complete(db, run, run.completes.fired)
                self._purge(db)

        await self._call(_record)

    async def get_run(self, run_id: str) -> Run:
        def _get() -> Run:
            params = {"run_id": run_id, "now": codec.now_us()}
            row = self._db().execute(sql.RUN_GET, params).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            return codec.run_from_columns(dict(row))

        return await self._call(_get)

    async def list_runs(
        self, namespace: str, job_id: str, page_size: int, page_token: str
    ) -> Page[Run]:
        """Newest due first, then highest attempt; the token is the last (due, attempt) seen."""
        pos = codec.decode_token(page_token, {"d": int, "a": int}) if page_token else None
        if page_size <= 0:
            return Page([], page_token)

        def _page() -> list[sqlite3.Row]:
            return self._db().execute(sql.RUNS_PAGE, {
                "namespace": namespace, "job_id": job_id, "now": codec.now_us(),
                "due": None if pos is None else pos["d"],
                "attempt": None if pos is None else pos["a"],
                "limit": page_size + 1}).fetchall()  # fmt: skip

        rows = await self._call(_page)
        runs = [codec.run_from_columns(dict(r)) for r in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(runs)
        last = runs[-1]
        return Page(runs, codec.encode_token({"d": codec.to_us(last.due), "a": last.attempt}))

    # -- executors ------------------------------------------------------------------------
    async def register_executors(self, names: Iterable[str]) -> None:
        rows = [{"name": n, "now": codec.now_us()} for n in set(names)]

        def _register() -> None:
            with self._tx() as db:
                db.executemany(sql.EXECUTOR_PUT, rows)

        await self._call(_register)

    async def save_begun(self, worker_id: str, through: datetime) -> None:
        def _save() -> None:
            with self._tx() as db:
                db.execute(sql.BEGUN_PUT, {"worker_id": worker_id, "through": codec.to_us(through)})

        await self._call(_save)

    async def load_begun(self, worker_id: str) -> datetime | None:
        row = await self._call(
            lambda: self._db().execute(sql.BEGUN_GET, {"worker_id": worker_id}).fetchone()
        )
        return None if row is None else codec.from_us(row["through"])

    async def known_executors(self) -> set[str]:
        return await self._call(
            lambda: {r["name"] for r in self._db().execute(sql.EXECUTORS_ALL)}
        )

    # -- namespace policies ---------------------------------------------------------------
    async def set_namespace_policy(self, policy: NamespacePolicy) -> None:
        key = {"namespace": policy.namespace}
        allowed = json.dumps(sorted(policy.allowed_executors))

        def _set() -> None:
            with self._tx() as db:
                if policy.allowed_executors:
                    db.execute(sql.POLICY_PUT, {**key, "allowed_executors": allowed})
                else:
                    db.execute(sql.POLICY_DELETE, key)

        await self._call(_set)

    async def get_namespace_policy(self, namespace: str) -> NamespacePolicy:
        row = await self._call(lambda: self._db().execute(sql.POLICY_GET, {"namespace": namespace}).fetchone())
        return NamespacePolicy(namespace) if row is None else _policy_from_row(row)

    async def namespace_policies(self) -> dict[str, NamespacePolicy]:
        rows = await self._call(lambda: self._db().execute(sql.POLICIES_ALL).fetchall())
        return {row["namespace"]: _policy_from_row(row) for row in rows}


def _policy_from_row(row: sqlite3.Row) -> NamespacePolicy:
    return NamespacePolicy(row["namespace"], frozenset(json.loads(row["allowed_executors"])))


def _job_from_row(row: sqlite3.Row) -> Job:
    cols = dict(row)
    cols["labels"] = json.loads(cols["labels"])
    return codec.job_from_columns(cols)


def _find_job(db: sqlite3.Connection, namespace: str, job_id: str) -> Job | None:
    row = db.execute(sql.JOB_GET, {"namespace": namespace, "id": job_id}).fetchone()
    return None if row is None else _job_from_row(row)


def _claim_key(fire: Fire) -> dict[str, Any]:
    """A claim is of the instant a fire stands for (see CassandraStore._claim_key)."""
    return {"namespace": fire.namespace, "job_id": fire.job_id, "due": codec.to_us(fire.at), "attempt": fire.attempt}


def _require_job(db: sqlite3.Connection, namespace: str, job_id: str) -> Job:
    job = _find_job(db, namespace, job_id)
    if job is None:
        raise JobNotFound(namespace, job_id)
    return job
