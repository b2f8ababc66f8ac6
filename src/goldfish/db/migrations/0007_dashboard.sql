-- The web dashboard's runs page: pipeline runs newest first, all of them or in one state, paged,
-- without sorting the table. ix_pipeline_runs_state_created also serves the old state lookups.
CREATE INDEX IF NOT EXISTS ix_pipeline_runs_created ON pipeline_runs(created_at);
DROP INDEX IF EXISTS ix_pipeline_runs_state;
CREATE INDEX IF NOT EXISTS ix_pipeline_runs_state_created ON pipeline_runs(state, created_at);
