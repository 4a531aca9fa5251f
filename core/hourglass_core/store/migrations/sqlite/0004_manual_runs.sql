-- Version 4: as Cassandra's version 6 (runs asked for with TriggerJob are marked).
ALTER TABLE runs ADD COLUMN manual INTEGER;
