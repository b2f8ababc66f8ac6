-- What a stage's code key covered (the import graph, or the modules/ tree and why), and the
-- timeline of a pipeline run: one row per fixed-cost step (version save, plan, driver start,
-- stage launch, collection, ...), read by inspect_run(include=["timings"]).

ALTER TABLE stage_runs ADD COLUMN code_scope TEXT;

CREATE TABLE IF NOT EXISTS run_timeline (
    id               INTEGER PRIMARY KEY,
    pipeline_run_id  TEXT NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    stage_run_id     TEXT,
    step             TEXT NOT NULL,
    at               REAL NOT NULL,
    ms               REAL
);
CREATE INDEX IF NOT EXISTS ix_run_timeline_run ON run_timeline(pipeline_run_id, id);
