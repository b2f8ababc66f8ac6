-- Pipelines and runs: pipeline runs, stage runs with attempts and transitions, signal lineage,
-- metrics, registered sources.

CREATE TABLE IF NOT EXISTS sources (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    uri              TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    metadata         TEXT NOT NULL DEFAULT '{}',
    content_hash     TEXT,
    size_bytes       INTEGER,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deprecated')),
    produced_by_run  TEXT,
    produced_signal  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS pipeline_runs (
    id                TEXT PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id),
    workspace         TEXT NOT NULL,
    version_num       INTEGER NOT NULL,
    pipeline          TEXT,
    state             TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'canceled')),
    reason            TEXT NOT NULL,
    results_spec      TEXT,
    experiment_group  TEXT,
    config_override   TEXT NOT NULL DEFAULT '{}',
    inputs_override   TEXT NOT NULL DEFAULT '{}',
    requested_stages  TEXT,
    use_cache         INTEGER NOT NULL DEFAULT 1,
    profile           TEXT,
    resumed_from      TEXT,
    created_at        TEXT NOT NULL,
    finished_at       TEXT,
    driver_pid        INTEGER,
    lease_owner       TEXT,
    lease_expires_at  REAL,
    error             TEXT
);
CREATE INDEX IF NOT EXISTS ix_pipeline_runs_workspace ON pipeline_runs(workspace, created_at);
CREATE INDEX IF NOT EXISTS ix_pipeline_runs_state ON pipeline_runs(state);

CREATE TABLE IF NOT EXISTS stage_runs (
    id                TEXT PRIMARY KEY,
    pipeline_run_id   TEXT NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    workspace         TEXT NOT NULL,
    version_num       INTEGER NOT NULL,
    stage             TEXT NOT NULL,
    module            TEXT NOT NULL,
    position          INTEGER NOT NULL,
    state             TEXT NOT NULL,
    failure_kind      TEXT,
    error             TEXT,
    attempt           INTEGER NOT NULL DEFAULT 0,
    backend           TEXT NOT NULL,
    profile           TEXT,
    backend_handle    TEXT,
    cache_key         TEXT,
    cache_hit         INTEGER NOT NULL DEFAULT 0,
    cached_from       TEXT,
    exit_code         INTEGER,
    config            TEXT NOT NULL DEFAULT '{}',
    timeout_seconds   INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    run_dir           TEXT,
    metrics_offset    INTEGER NOT NULL DEFAULT 0,
    heartbeat_at      REAL,
    heartbeat_message TEXT,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT
);
CREATE INDEX IF NOT EXISTS ix_stage_runs_pipeline ON stage_runs(pipeline_run_id, position);
CREATE INDEX IF NOT EXISTS ix_stage_runs_workspace ON stage_runs(workspace, created_at);
CREATE INDEX IF NOT EXISTS ix_stage_runs_stage ON stage_runs(workspace, stage, state, finished_at);
CREATE INDEX IF NOT EXISTS ix_stage_runs_state ON stage_runs(state);
CREATE INDEX IF NOT EXISTS ix_stage_runs_cache ON stage_runs(workspace, stage, cache_key, state);
CREATE INDEX IF NOT EXISTS ix_stage_runs_created ON stage_runs(created_at);

CREATE TABLE IF NOT EXISTS stage_attempts (
    id              INTEGER PRIMARY KEY,
    stage_run_id    TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    backend_handle  TEXT,
    state           TEXT NOT NULL,
    failure_kind    TEXT,
    error           TEXT,
    exit_code       INTEGER,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    UNIQUE (stage_run_id, attempt)
);

CREATE TABLE IF NOT EXISTS stage_state_transitions (
    id            INTEGER PRIMARY KEY,
    stage_run_id  TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    from_state    TEXT NOT NULL,
    to_state      TEXT NOT NULL,
    event         TEXT NOT NULL,
    at            TEXT NOT NULL,
    detail        TEXT
);
CREATE INDEX IF NOT EXISTS ix_transitions_run ON stage_state_transitions(stage_run_id, id);

CREATE TABLE IF NOT EXISTS signal_lineage (
    id               INTEGER PRIMARY KEY,
    stage_run_id     TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    direction        TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    signal           TEXT NOT NULL,
    type             TEXT NOT NULL,
    uri              TEXT NOT NULL,
    content_hash     TEXT,
    size_bytes       INTEGER,
    producer_run_id  TEXT,
    source_name      TEXT
);
CREATE INDEX IF NOT EXISTS ix_lineage_run ON signal_lineage(stage_run_id, direction);
CREATE INDEX IF NOT EXISTS ix_lineage_producer ON signal_lineage(producer_run_id);
CREATE INDEX IF NOT EXISTS ix_lineage_source ON signal_lineage(source_name);

-- seq numbers the points of one metric of one run from 0, so a downsampled series is a
-- handful of index lookups instead of a scan.
CREATE TABLE IF NOT EXISTS run_metrics (
    stage_run_id  TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    step          INTEGER,
    value         REAL NOT NULL,
    at            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_run_metrics ON run_metrics(stage_run_id, name, seq);

CREATE TABLE IF NOT EXISTS run_metric_summary (
    stage_run_id  TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    count         INTEGER NOT NULL,
    last_value    REAL NOT NULL,
    last_step     INTEGER,
    min_value     REAL NOT NULL,
    max_value     REAL NOT NULL,
    PRIMARY KEY (stage_run_id, name)
);

CREATE TABLE IF NOT EXISTS source_lineage (
    id            INTEGER PRIMARY KEY,
    source_name   TEXT NOT NULL,
    stage_run_id  TEXT NOT NULL,
    signal        TEXT NOT NULL,
    relation      TEXT NOT NULL CHECK (relation IN ('consumed', 'promoted')),
    at            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_source_lineage ON source_lineage(source_name, id);
