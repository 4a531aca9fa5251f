-- Version 3: as Cassandra's version 5 (a keyed job is found by the id its key gives).
DROP TABLE IF EXISTS idempotency_keys;
