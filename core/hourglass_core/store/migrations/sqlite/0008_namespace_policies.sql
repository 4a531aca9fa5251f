-- Version 8: as Cassandra's version 11 (per-namespace executor policies). The allowed
-- executors as a JSON list, sorted.
CREATE TABLE IF NOT EXISTS namespace_policies (
    namespace TEXT PRIMARY KEY,
    allowed_executors TEXT NOT NULL
) WITHOUT ROWID;
