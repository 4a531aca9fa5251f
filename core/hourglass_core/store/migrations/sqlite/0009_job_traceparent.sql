-- Version 9: as Cassandra's version 12 (the submit's W3C traceparent).
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
