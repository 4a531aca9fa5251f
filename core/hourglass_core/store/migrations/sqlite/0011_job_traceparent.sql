-- Version 11: as Cassandra's version 13 (the submit's W3C traceparent).
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
