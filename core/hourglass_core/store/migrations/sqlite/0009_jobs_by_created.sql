-- Version 9: a namespace's jobs newest first (the dashboard's jobs page), by an index.
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (namespace, created_at DESC, id DESC);
