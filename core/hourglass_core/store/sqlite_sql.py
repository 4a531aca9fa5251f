"""The SQL the SQLite store runs (constants only: every value is a named parameter)."""

from __future__ import annotations

from hourglass_core.store.codec import EVENT_COLUMNS, JOB_COLUMNS, RUN_COLUMNS, UPDATE_COLUMNS


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    names = ", ".join(columns)
    return f"{verb} INTO {table} ({names}) VALUES ({', '.join(':' + c for c in columns)})"


VERSIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
)
VERSION_INSERT = "INSERT OR IGNORE INTO schema_migrations VALUES (:version, :name, :applied_at)"

JOB_INSERT = _insert("jobs", JOB_COLUMNS)
JOB_GET = "SELECT * FROM jobs WHERE namespace = :namespace AND id = :id"
JOB_SET_STATE = (
    "UPDATE jobs SET state = :state, next_fire_time = :next, note = :note WHERE namespace = :namespace"
    " AND id = :id"
)
JOB_UPDATE = (
    f"UPDATE jobs SET {', '.join(f'{c} = :{c}' for c in UPDATE_COLUMNS)} WHERE namespace = :namespace AND id = :id"
)
JOB_EVENT_PUT = _insert(
    "job_events",
    (*EVENT_COLUMNS, "expires_at"),
    "INSERT OR REPLACE",
)
JOB_EVENTS_BETWEEN = (
    "SELECT * FROM job_events WHERE namespace = :namespace AND job_id = :job_id AND at >= :since AND at < :until"
    " AND expires_at > :now ORDER BY at, kind"
)
JOB_DELETE = "DELETE FROM jobs WHERE namespace = :namespace AND id = :id"
JOB_SET_NEXT = "UPDATE jobs SET next_fire_time = :next, fired = :fired WHERE namespace = :namespace AND id = :id"
JOB_COMPLETE = (
    "UPDATE jobs SET state = 'completed', next_fire_time = NULL, fired = :fired WHERE namespace = :namespace"
    " AND id = :id"
)
# Listing: state and name prefix are filtered here, labels in Python (JobFilter.matches).
JOB_PAGE = (
    "SELECT * FROM jobs WHERE namespace = :namespace AND id > :after"
    " AND (:state IS NULL OR state = :state)"
    " AND substr(name, 1, length(:prefix)) = :prefix"
    " ORDER BY id LIMIT :limit"
)

# Newest first: keyset pages over the jobs_by_created index.
JOB_PAGE_NEWEST = (
    "SELECT * FROM jobs WHERE namespace = :namespace AND (created_at, id) < (:before, :after)"
    " AND (:state IS NULL OR state = :state)"
    " AND substr(name, 1, length(:prefix)) = :prefix"
    " ORDER BY created_at DESC, id DESC LIMIT :limit"
)

# The run mirror on the job: each column group takes an event only if its version (codec.
# run_write_timestamp) is not older than the one that last wrote the group; this is exactly
# what Cassandra's per-cell write timestamps do.
JOB_RUN_STARTED = """
UPDATE jobs SET
    running = CASE WHEN :ts >= running_ts THEN 1 ELSE running END,
    running_ts = MAX(running_ts, :ts),
    last_start_time = CASE WHEN :ts >= start_ts THEN COALESCE(:at, last_start_time)
                           ELSE last_start_time END,
    last_executor = CASE WHEN :ts >= start_ts THEN :worker ELSE last_executor END,
    start_ts = MAX(start_ts, :ts)
WHERE namespace = :namespace AND id = :id
"""
JOB_RUN_BEGAN = """
UPDATE jobs SET
    last_start_time = CASE WHEN :ts >= start_ts THEN :at ELSE last_start_time END,
    last_executor = CASE WHEN :ts >= start_ts THEN :worker ELSE last_executor END,
    start_ts = MAX(start_ts, :ts)
WHERE namespace = :namespace AND id = :id
"""
JOB_RUN_FINISHED = """
UPDATE jobs SET
    running = CASE WHEN :ts >= running_ts THEN 0 ELSE running END,
    running_ts = MAX(running_ts, :ts),
    last_end_time = CASE WHEN :ts >= end_ts THEN COALESCE(:at, last_end_time)
                         ELSE last_end_time END,
    last_status = CASE WHEN :ts >= end_ts THEN :status ELSE last_status END,
    end_ts = MAX(end_ts, :ts)
WHERE namespace = :namespace AND id = :id
"""


_FIRE_COLUMNS = ("shard", "due", "namespace", "job_id", "attempt", "kind", "priority", "nominal", "overlap")
FIRE_PUT = _insert("fires", _FIRE_COLUMNS + ("expires_at",), "INSERT OR REPLACE")
FIRE_SLICE = (
    f"SELECT {', '.join(_FIRE_COLUMNS)} FROM fires WHERE shard = :shard AND due > :after"
    " AND due <= :until ORDER BY due, namespace, job_id, attempt LIMIT :limit"
)
CLAIM = _insert(
    "fire_claims",
    ("namespace", "job_id", "due", "attempt", "worker_id", "fencing_token", "claimed_at",
     "expires_at"),
    "INSERT OR IGNORE",
)  # fmt: skip
CLAIM_STEAL = (
    "UPDATE fire_claims SET worker_id = :to_worker, fencing_token = :fencing_token"
    " WHERE namespace = :namespace AND job_id = :job_id AND due = :due AND attempt = :attempt"
    " AND worker_id = :from_worker"
)
CLAIM_GET = (
    "SELECT worker_id, fencing_token FROM fire_claims WHERE namespace = :namespace"
    " AND job_id = :job_id AND due = :due AND attempt = :attempt"
)

CHECKPOINT_GET = "SELECT shard, at, fencing_token FROM checkpoints WHERE shard = :shard"
CHECKPOINT_PUT = "INSERT OR REPLACE INTO checkpoints VALUES (:shard, :at, :fencing_token)"
MAX_TOKEN = "SELECT COALESCE(MAX(fencing_token), 0) FROM checkpoints"

# A run event replaces the stored one only if it is not older (same versions as Cassandra's
# USING TIMESTAMP): a late RUNNING never turns a finished run back.
RUN_UPSERT = (
    _insert("runs", RUN_COLUMNS + ("ts", "expires_at"))
    + """
ON CONFLICT (run_id) DO UPDATE SET
    status = excluded.status,
    worker_id = excluded.worker_id,
    started_at = COALESCE(excluded.started_at, runs.started_at),
    ended_at = COALESCE(excluded.ended_at, runs.ended_at),
    result_data = excluded.result_data,
    result_content_type = excluded.result_content_type,
    error = excluded.error,
    reason = excluded.reason,
    ts = excluded.ts,
    expires_at = excluded.expires_at
WHERE excluded.ts >= runs.ts
"""
)
RUN_GET = "SELECT * FROM runs WHERE run_id = :run_id AND expires_at > :now"
RUNS_PAGE = (
    "SELECT * FROM runs WHERE namespace = :namespace AND job_id = :job_id AND expires_at > :now"
    " AND (:due IS NULL OR (due, attempt) < (:due, :attempt))"
    " ORDER BY due DESC, attempt DESC LIMIT :limit"
)

# A worker's begun watermark only ever grows.
BEGUN_PUT = (
    "INSERT INTO worker_begun VALUES (:worker_id, :through)"
    " ON CONFLICT (worker_id) DO UPDATE SET through = MAX(through, excluded.through)"
)
BEGUN_GET = "SELECT through FROM worker_begun WHERE worker_id = :worker_id"

EXECUTOR_PUT = (
    "INSERT INTO executors VALUES (:name, :now)"
    " ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen"
)
EXECUTORS_ALL = "SELECT name FROM executors"

POLICY_PUT = "INSERT OR REPLACE INTO namespace_policies VALUES (:namespace, :allowed_executors)"
POLICY_DELETE = "DELETE FROM namespace_policies WHERE namespace = :namespace"
POLICY_GET = "SELECT namespace, allowed_executors FROM namespace_policies WHERE namespace = :namespace"
POLICIES_ALL = "SELECT namespace, allowed_executors FROM namespace_policies"

# SQLite has no TTL: expired rows are deleted now and then (see SqliteStore._purge).
PURGE = (
    "DELETE FROM runs WHERE expires_at <= :now",
    "DELETE FROM fires WHERE expires_at <= :now",
    "DELETE FROM fire_claims WHERE expires_at <= :now",
    "DELETE FROM job_events WHERE expires_at <= :now",
)
