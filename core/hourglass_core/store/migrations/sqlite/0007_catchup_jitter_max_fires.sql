-- Version 7: as Cassandra's version 9 (catch-up window, jitter, max fires, fired, notes).
ALTER TABLE jobs ADD COLUMN catchup_window_us INTEGER;
ALTER TABLE jobs ADD COLUMN jitter_us INTEGER;
ALTER TABLE jobs ADD COLUMN max_fires INTEGER;
ALTER TABLE jobs ADD COLUMN fired INTEGER;
ALTER TABLE jobs ADD COLUMN note TEXT;
