-- GCE: the zone of each stage attempt, and the warm pool of reusable VMs with its transitions.

ALTER TABLE stage_attempts ADD COLUMN zone TEXT;

CREATE TABLE IF NOT EXISTS warm_instances (
    name           TEXT PRIMARY KEY,
    zone           TEXT NOT NULL,
    profile        TEXT NOT NULL,
    spot           INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL CHECK (state IN
                     ('launching', 'busy', 'idle', 'claimed', 'draining', 'deleting', 'deleted')),
    current_run    TEXT,
    image          TEXT,
    jobs_run       INTEGER NOT NULL DEFAULT 0,
    idle_since     TEXT,
    idle_deadline  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    last_error     TEXT
);
-- The claim looks up idle instances of one profile; the cap counts live ones.
CREATE INDEX IF NOT EXISTS ix_warm_instances_state ON warm_instances(state, profile, idle_since);
CREATE INDEX IF NOT EXISTS ix_warm_instances_run ON warm_instances(current_run);

CREATE TABLE IF NOT EXISTS warm_instance_transitions (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL REFERENCES warm_instances(name) ON DELETE CASCADE,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    event       TEXT NOT NULL,
    at          TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS ix_warm_transitions_name ON warm_instance_transitions(name, id);
