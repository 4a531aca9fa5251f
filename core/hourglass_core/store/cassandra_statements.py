"""Every CQL statement the Cassandra store runs, prepared once (after the schema is in place).

Table and column names are constants; every value is a bind marker, so no CQL text is ever
built from user data. Tables are unqualified: the session's keyspace is set before preparing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from hourglass_core.store.codec import EVENT_COLUMNS, NARROW_COLUMNS, NARROW_UPDATE_COLUMNS, RUN_COLUMNS


def _insert(table: str, columns: tuple[str, ...], suffix: str = "") -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){suffix}"


_FIRE_COLUMNS = ("due", "namespace", "job_id", "attempt", "kind", "priority", "nominal", "overlap")
_CLAIM_KEY = "shard = ? AND bucket_start = ? AND due = ? AND namespace = ? AND job_id = ? AND attempt = ?"
_CLAIM_COLUMNS = (
    "shard", "bucket_start", "due", "namespace", "job_id", "attempt", "worker_id", "fencing_token", "claimed_at",
)  # fmt: skip
_RUN_BY_JOB_COLUMNS = ("namespace", "job_id", "due", "attempt") + tuple(
    c for c in RUN_COLUMNS if c not in ("namespace", "job_id", "due", "attempt")
)

CQL: dict[str, str] = {
    # jobs
    "job_insert": _insert("jobs", (*NARROW_COLUMNS, "spec"), " USING TIMESTAMP ?"),
    "job_get": "SELECT * FROM jobs WHERE namespace = ? AND id = ?",
    "jobs_get": "SELECT * FROM jobs WHERE namespace = ? AND id IN ?",
    "job_set_state": "UPDATE jobs SET state = ?, next_fire_time = ?, note = ? WHERE namespace = ? AND id = ?",
    # With the time the move was decided as its write timestamp: see advance_schedule.
    "job_set_next": "UPDATE jobs USING TIMESTAMP ? SET next_fire_time = ?, fired = ? WHERE namespace = ? AND id = ?",
    # Completing is the one job-state change made by the workers: conditional, so that it can
    # never overwrite a pause or cancel (or a resume that moved the schedule) racing with it.
    "job_complete": (
        "UPDATE jobs SET state = ?, next_fire_time = null, fired = ? WHERE namespace = ? AND id = ?"
        " IF state = ? AND next_fire_time = ?"
    ),
    # Completing by the winner of the last fire's claim: ordered by time against pause,
    # cancel and resume instead (see CassandraStore.advance_schedule).
    "job_complete_at": (
        "UPDATE jobs USING TIMESTAMP ? SET state = ?, next_fire_time = null, fired = ? WHERE namespace = ? AND id = ?"
    ),
    "job_run_started": (
        "UPDATE jobs USING TIMESTAMP ? SET running = true, last_start_time = ?,"
        " last_executor = ? WHERE namespace = ? AND id = ?"
    ),
    # A finished run's start, for a run whose RUNNING event was never sent (a short one).
    "job_run_began": "UPDATE jobs USING TIMESTAMP ? SET last_start_time = ?, last_executor = ? WHERE namespace = ? AND id = ?",
    "job_run_finished": (
        "UPDATE jobs USING TIMESTAMP ? SET running = false, last_end_time = ?,"
        " last_status = ? WHERE namespace = ? AND id = ?"
    ),
    "job_delete": "DELETE FROM jobs WHERE namespace = ? AND id = ?",
    # UpdateJob: only over the version and state it was decided on (optimistic concurrency).
    "job_update": (
        f"UPDATE jobs SET {', '.join(c + ' = ?' for c in NARROW_UPDATE_COLUMNS)} WHERE namespace = ? AND id = ?"
        " IF version = ? AND state = ?"
    ),
    "job_event_put": _insert("job_events", EVENT_COLUMNS, " USING TTL ?"),
    "job_events_between": "SELECT * FROM job_events WHERE namespace = ? AND job_id = ? AND at >= ? AND at < ?",
    "listing_insert": "INSERT INTO jobs_by_bucket (namespace, bucket, id) VALUES (?, ?, ?)",
    "listing_delete": "DELETE FROM jobs_by_bucket WHERE namespace = ? AND bucket = ? AND id = ?",
    "listing_slice": (
        "SELECT id FROM jobs_by_bucket WHERE namespace = ? AND bucket = ? AND id > ? LIMIT ?"
    ),
    # newest first (list_jobs_newest), and indexing the jobs created before that existed
    "created_insert": "INSERT INTO jobs_by_created (namespace, period, created_at, id) VALUES (?, ?, ?, ?)",
    "created_delete": "DELETE FROM jobs_by_created WHERE namespace = ? AND period = ? AND created_at = ? AND id = ?",
    "created_slice": (
        "SELECT created_at, id FROM jobs_by_created WHERE namespace = ? AND period = ? AND (created_at, id) < (?, ?) LIMIT ?"
    ),
    "period_mark": "INSERT INTO job_periods (namespace, period) VALUES (?, ?)",
    "periods_from": "SELECT period FROM job_periods WHERE namespace = ? AND period <= ? LIMIT ?",
    "jobs_scan": "SELECT namespace, id, created_at, token(namespace, id) AS t FROM jobs WHERE token(namespace, id) > ? LIMIT ?",
    "data_migration_get": "SELECT name FROM data_migrations WHERE name = ?",
    "data_migration_done": "INSERT INTO data_migrations (name, done_at) VALUES (?, ?)",
    # schedule
    "fire_put": _insert("fires", ("shard", "bucket_start") + _FIRE_COLUMNS, " USING TTL ?"),
    "fire_slice": (
        f"SELECT {', '.join(_FIRE_COLUMNS)} FROM fires WHERE shard = ? AND bucket_start = ?"
        " AND due > ? AND due <= ? LIMIT ?"
    ),
    # Claims live in their fire's schedule partition: one conditional batch claims many.
    "claim": _insert("fire_claims_by_bucket", _CLAIM_COLUMNS, " IF NOT EXISTS USING TTL ?"),
    "claim_steal": (
        "UPDATE fire_claims_by_bucket USING TTL ? SET worker_id = ?, fencing_token = ?"
        f" WHERE {_CLAIM_KEY} IF worker_id = ?"
    ),
    "claim_get": f"SELECT worker_id FROM fire_claims_by_bucket WHERE {_CLAIM_KEY}",
    "checkpoint_get": "SELECT shard, at, fencing_token FROM checkpoints WHERE shard = ?",
    "checkpoint_insert": (
        "INSERT INTO checkpoints (shard, at, fencing_token) VALUES (?, ?, ?) IF NOT EXISTS"
    ),
    "checkpoint_update": "UPDATE checkpoints SET at = ?, fencing_token = ? WHERE shard = ? IF fencing_token <= ?",
    "checkpoint_tokens": "SELECT fencing_token FROM checkpoints",
    # runs
    "run_by_job_put": _insert("runs_by_job", _RUN_BY_JOB_COLUMNS, " USING TTL ? AND TIMESTAMP ?"),
    "run_get": "SELECT * FROM runs_by_job WHERE namespace = ? AND job_id = ? AND due = ? AND attempt = ?",
    # runs recorded before run ids spelled out their key (no longer written; they expire)
    "run_get_legacy": "SELECT * FROM runs_by_id WHERE run_id = ?",
    "runs_first": "SELECT * FROM runs_by_job WHERE namespace = ? AND job_id = ? LIMIT ?",
    "runs_after": (
        "SELECT * FROM runs_by_job WHERE namespace = ? AND job_id = ?"
        " AND (due, attempt) < (?, ?) LIMIT ?"
    ),
    # begun watermarks: the write timestamp is the watermark, so the highest one wins
    "begun_put": "INSERT INTO worker_begun (worker_id, through) VALUES (?, ?) USING TIMESTAMP ?",
    "begun_get": "SELECT through FROM worker_begun WHERE worker_id = ?",
    # executors
    "executor_put": "INSERT INTO executors (name, last_seen) VALUES (?, ?)",
    "executors_all": "SELECT name FROM executors",
    # namespace policies: an INSERT replaces the whole set; no limit is no row
    "policy_put": "INSERT INTO namespace_policies (namespace, allowed_executors) VALUES (?, ?)",
    "policy_delete": "DELETE FROM namespace_policies WHERE namespace = ?",
    "policy_get": "SELECT namespace, allowed_executors FROM namespace_policies WHERE namespace = ?",
    "policies_all": "SELECT namespace, allowed_executors FROM namespace_policies",
}

RUN_BY_JOB_COLUMNS = _RUN_BY_JOB_COLUMNS


def idempotent(cql: str) -> bool:
    """Whether running `cql` twice leaves what running it once does, so the driver may send it
    again when its first coordinator is slow (see warm_up): every statement here but a
    lightweight transaction, whose second run would answer "not applied" to its own first. No
    statement adds to a counter or a list, and each write carries the driver's timestamp (the
    same in a request sent twice)."""
    return " IF " not in cql


@dataclass(frozen=True, slots=True)
class Statements:
    """Prepared statements, one per entry of CQL (driver objects, hence Any)."""

    job_insert: Any
    job_get: Any
    jobs_get: Any
    job_set_state: Any
    job_set_next: Any
    job_complete: Any
    job_complete_at: Any
    job_run_started: Any
    job_run_began: Any
    job_run_finished: Any
    job_delete: Any
    job_update: Any
    job_event_put: Any
    job_events_between: Any
    listing_insert: Any
    listing_delete: Any
    listing_slice: Any
    created_insert: Any
    created_delete: Any
    created_slice: Any
    period_mark: Any
    periods_from: Any
    jobs_scan: Any
    data_migration_get: Any
    data_migration_done: Any
    fire_put: Any
    fire_slice: Any
    claim: Any
    claim_steal: Any
    claim_get: Any
    checkpoint_get: Any
    checkpoint_insert: Any
    checkpoint_update: Any
    checkpoint_tokens: Any
    run_by_job_put: Any
    run_get: Any
    run_get_legacy: Any
    runs_first: Any
    runs_after: Any
    begun_put: Any
    begun_get: Any
    executor_put: Any
    executors_all: Any
    policy_put: Any
    policy_delete: Any
    policy_get: Any
    policies_all: Any

    @classmethod
    def prepare(cls, prepare: Callable[[str], Any]) -> Statements:
        """Prepares every statement with `prepare` (Session.prepare: blocking), each marked
        idempotent but the lightweight transactions (see `idempotent`)."""
        prepared = {f.name: prepare(CQL[f.name]) for f in fields(cls)}
        for name, statement in prepared.items():
            statement.is_idempotent = idempotent(CQL[name])
        return cls(**prepared)
