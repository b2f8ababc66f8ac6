-- Goldfish project database, schema version 1 (baseline).
-- Later changes are numbered files in migrations/ (NNNN_name.sql); PRAGMA user_version
-- records the last one applied. Documented in schema/README.md.

CREATE TABLE IF NOT EXISTS workspaces (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    goal             TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL,
    parent_workspace TEXT,
    parent_version   INTEGER,
    base_commit      TEXT NOT NULL,
    deleted_at       TEXT
);
-- A name is unique among live workspaces; a deleted name may be reused.
CREATE UNIQUE INDEX IF NOT EXISTS ux_workspaces_live_name ON workspaces(name) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS workspace_versions (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    version_num   INTEGER NOT NULL,
    commit_sha    TEXT NOT NULL,
    message       TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('save', 'hibernate', 'rollback', 'run', 'reconcile')),
    files_changed INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    pruned        INTEGER NOT NULL DEFAULT 0 CHECK (pruned IN (0, 1)),
    pruned_at     TEXT,
    UNIQUE (workspace_id, version_num)
);
CREATE INDEX IF NOT EXISTS ix_versions_live ON workspace_versions(workspace_id, pruned, version_num);

CREATE TABLE IF NOT EXISTS version_tags (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    version_id   INTEGER NOT NULL REFERENCES workspace_versions(id) ON DELETE CASCADE,
    tag          TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (workspace_id, tag)
);
CREATE INDEX IF NOT EXISTS ix_version_tags_version ON version_tags(version_id);

CREATE TABLE IF NOT EXISTS workspace_mounts (
    slot         TEXT PRIMARY KEY,
    workspace_id INTEGER NOT NULL UNIQUE REFERENCES workspaces(id) ON DELETE CASCADE,
    mounted_at   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS audit (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    tool         TEXT NOT NULL,
    workspace    TEXT,
    reason       TEXT,
    arguments    TEXT NOT NULL DEFAULT '{}',
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'error')),
    error_code   TEXT,
    duration_ms  REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_audit_workspace ON audit(workspace, id);

CREATE TABLE IF NOT EXISTS thoughts (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    workspace  TEXT,
    run_id     TEXT,
    thought    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_thoughts_workspace ON thoughts(workspace, id);
