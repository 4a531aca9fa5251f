-- Version 5: as Cassandra's version 7 (a cron job's daylight-saving policies).
ALTER TABLE jobs ADD COLUMN trigger_dst_gap TEXT;
ALTER TABLE jobs ADD COLUMN trigger_dst_repeat TEXT;
