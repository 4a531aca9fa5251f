-- Version 10: a job's lateness SLO (JobOptions.lateness_slo); absent means none. Cassandra keeps
-- it in the job's spec cell (no migration there).
ALTER TABLE jobs ADD COLUMN lateness_slo_us INTEGER;
