"""Waiting for a run (`goldfish run --wait`, `run(wait=true)`) notices another process's commit."""

from __future__ import annotations

from pathlib import Path

from goldfish.context import ServerContext
from goldfish.db.database import Database


def test_wait_for_change_returns_a_new_version_once_another_connection_commits(project_root: Path) -> None:
    context = ServerContext.open(project_root)
    other = Database(context.paths.database)
    try:
        seen = context.db.data_version()
        with other.transaction() as conn:
            conn.execute("INSERT INTO thoughts (thought, at) VALUES ('noted', '2026-01-01T00:00:00Z')")

        changed = context.db.wait_for_change(seen, 60.0)
        unchanged = context.db.wait_for_change(changed, 0.02)
    finally:
        other.close()
        context.close()

    assert changed != seen
    assert unchanged == changed
