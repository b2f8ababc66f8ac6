-- Experiment memory: one record per run() call and per saved version, finalizations with
-- history, and record tags.

CREATE TABLE IF NOT EXISTS experiment_records (
    id                TEXT PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id),
    workspace         TEXT NOT NULL,
    record_type       TEXT NOT NULL CHECK (record_type IN ('run', 'version')),
    pipeline_run_id   TEXT UNIQUE REFERENCES pipeline_runs(id),
    version_num       INTEGER NOT NULL,
    reason            TEXT,
    results_spec      TEXT,
    experiment_group  TEXT,
    created_at        TEXT NOT NULL,
    finalized_at      TEXT,
    ml_outcome        TEXT CHECK (ml_outcome IN ('success', 'partial', 'miss', 'unknown')),
    primary_metric    TEXT,
    metric_value      REAL,
    direction         TEXT CHECK (direction IN ('maximize', 'minimize'))
);
CREATE INDEX IF NOT EXISTS ix_records_workspace ON experiment_records(workspace, created_at);
CREATE INDEX IF NOT EXISTS ix_records_version ON experiment_records(workspace_id, version_num);
CREATE INDEX IF NOT EXISTS ix_records_metric ON experiment_records(workspace, primary_metric, metric_value);
CREATE INDEX IF NOT EXISTS ix_records_unfinalized ON experiment_records(record_type, finalized_at);

CREATE TABLE IF NOT EXISTS finalizations (
    id             INTEGER PRIMARY KEY,
    record_id      TEXT NOT NULL REFERENCES experiment_records(id) ON DELETE CASCADE,
    results        TEXT NOT NULL,
    reason         TEXT,
    created_at     TEXT NOT NULL,
    superseded_at  TEXT
);
CREATE INDEX IF NOT EXISTS ix_finalizations_record ON finalizations(record_id, id);

CREATE TABLE IF NOT EXISTS record_tags (
    id          INTEGER PRIMARY KEY,
    record_id   TEXT NOT NULL REFERENCES experiment_records(id) ON DELETE CASCADE,
    workspace   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (workspace, tag)
);
CREATE INDEX IF NOT EXISTS ix_record_tags_record ON record_tags(record_id);
