-- Image builds of the docker backend (stage images: base + requirements layer + goldfish
-- runtime; base images built from the Dockerfile), with their state and the tail of their log.

CREATE TABLE IF NOT EXISTS image_builds (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('stage', 'base')),
    image              TEXT NOT NULL,
    base_image         TEXT,
    requirements_hash  TEXT,
    workspace          TEXT,
    stage_run_id       TEXT,
    state              TEXT NOT NULL CHECK (state IN ('building', 'succeeded', 'failed')),
    log_tail           TEXT NOT NULL DEFAULT '',
    log_lines          INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    started_at         TEXT NOT NULL,
    finished_at        TEXT,
    duration_ms        INTEGER
);
CREATE INDEX IF NOT EXISTS ix_image_builds_started ON image_builds(started_at);
CREATE INDEX IF NOT EXISTS ix_image_builds_workspace ON image_builds(workspace, started_at);
