-- Version 10: a job's lateness SLO (JobOptions.lateness_slo); absent means none. Cassandra keeps
-- it in the job's spec cell (and, for rows of the flat form, a column: Cassandra's version 14).
ALTER TABLE jobs ADD COLUMN lateness_slo_us INTEGER;
