-- Pending finalizations (run records without an outcome), oldest first, without sorting them all:
-- a partial index on exactly those rows, in the order RecordRepository.unfinalized lists them.
-- It replaces ix_records_unfinalized (record_type, finalized_at), which found the rows but left
-- status() sorting every pending record to show the first five.

DROP INDEX IF EXISTS ix_records_unfinalized;
CREATE INDEX IF NOT EXISTS ix_records_pending ON experiment_records(created_at, id)
    WHERE record_type = 'run' AND finalized_at IS NULL;
