-- Version 6: as Cassandra's version 8 (UpdateJob, BackfillJob, TriggerJob's overlap
-- override, ExplainJob's job events).
ALTER TABLE jobs ADD COLUMN version INTEGER;
ALTER TABLE fires ADD COLUMN nominal INTEGER;
ALTER TABLE fires ADD COLUMN overlap TEXT;
CREATE TABLE IF NOT EXISTS job_events (
    namespace TEXT NOT NULL,
    job_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    detail TEXT NOT NULL,
    previous_trigger TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, job_id, at, kind)
) WITHOUT ROWID;
