-- Hourglass schema for SQLite, version 1: the same columns as the Cassandra tables (times and
-- durations as integer microseconds since the epoch; see store/codec.py).

CREATE TABLE IF NOT EXISTS jobs (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    executor TEXT NOT NULL,
    priority INTEGER NOT NULL,
    params_data BLOB NOT NULL,
    params_content_type TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    trigger_at INTEGER,
    trigger_every_us INTEGER,
    trigger_cron TEXT,
    trigger_timezone TEXT,
    trigger_start INTEGER,
    trigger_end INTEGER,
    timeout_us INTEGER,
    retry_max_attempts INTEGER NOT NULL,
    retry_initial_backoff_us INTEGER NOT NULL,
    retry_max_backoff_us INTEGER NOT NULL,
    retry_multiplier REAL NOT NULL,
    misfire_policy TEXT NOT NULL,
    misfire_grace_us INTEGER NOT NULL,
    overlap_policy TEXT NOT NULL,
    labels TEXT NOT NULL,            -- JSON object
    idempotency_key TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    next_fire_time INTEGER,
    -- The run mirror, each group with the version (codec.run_write_timestamp) that wrote it,
    -- so events apply in the run's own time order exactly as Cassandra's cell timestamps do.
    running INTEGER NOT NULL DEFAULT 0,
    running_ts INTEGER NOT NULL DEFAULT 0,
    last_start_time INTEGER,
    last_executor TEXT,
    start_ts INTEGER NOT NULL DEFAULT 0,
    last_end_time INTEGER,
    last_status TEXT,
    end_ts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS fires (
    shard INTEGER NOT NULL,
    due INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (shard, due, namespace, job_id, attempt)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS fires_by_expiry ON fires (expires_at);

CREATE TABLE IF NOT EXISTS fire_claims (
    namespace TEXT NOT NULL,
    job_id TEXT NOT NULL,
    due INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, job_id, due, attempt)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS fire_claims_by_expiry ON fire_claims (expires_at);

CREATE TABLE IF NOT EXISTS checkpoints (
    shard INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    fencing_token INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    job_id TEXT NOT NULL,
    due INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    result_data BLOB NOT NULL,
    result_content_type TEXT NOT NULL,
    error TEXT NOT NULL,
    ts INTEGER NOT NULL,             -- codec.run_write_timestamp of the event stored
    expires_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS runs_by_job ON runs (namespace, job_id, due DESC, attempt DESC);
CREATE INDEX IF NOT EXISTS runs_by_expiry ON runs (expires_at);

CREATE TABLE IF NOT EXISTS executors (
    name TEXT PRIMARY KEY,
    last_seen INTEGER NOT NULL
);
