-- Version 2: as Cassandra's version 4 (run reasons, on_worker_lost, begun watermarks).
ALTER TABLE runs ADD COLUMN reason TEXT;
ALTER TABLE jobs ADD COLUMN on_worker_lost TEXT;

CREATE TABLE IF NOT EXISTS worker_begun (
    worker_id TEXT PRIMARY KEY,
    through INTEGER NOT NULL
) WITHOUT ROWID;
