"""Counting what a project holds (live, or in a database snapshot file) for backups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from goldfish.db.database import Database

COUNTED = {
    "workspaces": "SELECT COUNT(*) FROM workspaces WHERE deleted_at IS NULL",
    "versions": "SELECT COUNT(*) FROM workspace_versions",
    "tags": "SELECT COUNT(*) FROM version_tags",  # tag_record tags the version too
    "pipeline_runs": "SELECT COUNT(*) FROM pipeline_runs",
    "stage_runs": "SELECT COUNT(*) FROM stage_runs",
    "records": "SELECT COUNT(*) FROM experiment_records",
}


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(conn.execute(sql).fetchone()[0]) for name, sql in COUNTED.items()}


def live_counts(db: Database) -> dict[str, int]:
    """Workspaces, versions, tags, pipeline runs, stage runs and records in ``db`` now."""
    return _counts(db.connection)


def snapshot_facts(path: Path) -> tuple[dict[str, int], int, bool]:
    """``(counts, schema version, integrity ok)`` of the database file ``path`` (opened read-only)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        counts = _counts(conn)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return counts, version, ok


def rebase_uris(path: Path, old_prefix: str, new_prefix: str) -> int:
    """Point the URIs under ``old_prefix`` at ``new_prefix`` in the database file ``path``.

    Local outputs and registered files are stored as absolute ``file://`` URIs, so a project
    restored into another folder (``old_prefix``: its former root, ``file:///old/root/``) needs
    them moved. Returns how many rows changed.
    """
    conn = sqlite3.connect(path)
    changed = 0
    try:
        with conn:
            for table in ("signal_lineage", "sources"):
                cursor = conn.execute(
                    f"UPDATE {table} SET uri = ? || substr(uri, ?) WHERE substr(uri, 1, ?) = ?",  # noqa: S608
                    (new_prefix, len(old_prefix) + 1, len(old_prefix), old_prefix),
                )
                changed += cursor.rowcount
    finally:
        conn.close()
    return changed
