-- SVS: output statistics on the lineage row, rule findings per stage run, the pre-run review
-- of each pipeline run, and failure patterns learned from failed stage runs.

ALTER TABLE signal_lineage ADD COLUMN stats TEXT;

CREATE TABLE IF NOT EXISTS svs_findings (
    id            INTEGER PRIMARY KEY,
    stage_run_id  TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    signal        TEXT NOT NULL,
    rule          TEXT NOT NULL,
    column_name   TEXT,
    mode          TEXT NOT NULL CHECK (mode IN ('warn', 'block')),
    bound         TEXT NOT NULL DEFAULT '{}',
    observed      REAL,
    message       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_svs_findings_run ON svs_findings(stage_run_id, id);
-- dashboard alerts: the newest findings
CREATE INDEX IF NOT EXISTS ix_svs_findings_created ON svs_findings(created_at);

CREATE TABLE IF NOT EXISTS svs_reviews (
    pipeline_run_id  TEXT PRIMARY KEY REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    reviewed_by      TEXT NOT NULL
                     CHECK (reviewed_by IN ('static', 'client_sampling', 'anthropic_api', 'none')),
    why              TEXT,
    findings         TEXT NOT NULL DEFAULT '[]',
    model_text       TEXT,
    blocked          INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS failure_patterns (
    id                TEXT PRIMARY KEY,
    signature         TEXT NOT NULL UNIQUE,
    stage             TEXT NOT NULL,
    error_type        TEXT NOT NULL,
    message           TEXT NOT NULL,
    frame             TEXT,
    status            TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'approved', 'rejected')),
    occurrences       INTEGER NOT NULL DEFAULT 0,
    first_seen        TEXT NOT NULL,
    last_seen         TEXT NOT NULL,
    last_run_id       TEXT,
    fixed_in_workspace TEXT,
    fixed_in_version  INTEGER,
    fixed_by_run_id   TEXT
);
CREATE INDEX IF NOT EXISTS ix_failure_patterns_seen ON failure_patterns(last_seen);

CREATE TABLE IF NOT EXISTS failure_pattern_runs (
    pattern_id    TEXT NOT NULL REFERENCES failure_patterns(id) ON DELETE CASCADE,
    stage_run_id  TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    stage         TEXT NOT NULL,
    version_num   INTEGER NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (pattern_id, stage_run_id)
);
CREATE INDEX IF NOT EXISTS ix_failure_pattern_runs_run ON failure_pattern_runs(stage_run_id);
-- "what fixed it": failures of a workspace's stage, looked up when a run of that stage succeeds
CREATE INDEX IF NOT EXISTS ix_failure_pattern_runs_stage ON failure_pattern_runs(workspace, stage);
