-- Stage environment (issue 14): plain env and secret names per stage run (never secret values),
-- the local GPUs it asked for and the device indices it was given while it holds them.

ALTER TABLE stage_runs ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
ALTER TABLE stage_runs ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
ALTER TABLE stage_runs ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stage_runs ADD COLUMN gpu_ids TEXT;
-- GPU scheduling reads the devices held by live stage runs.
CREATE INDEX IF NOT EXISTS ix_stage_runs_gpu_ids ON stage_runs(state) WHERE gpu_ids IS NOT NULL;
