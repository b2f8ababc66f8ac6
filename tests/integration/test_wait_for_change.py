"""`goldfish run --wait` notices a commit of another process through SQLite's data version."""

from __future__ import annotations

from pathlib import Path

from goldfish.cli_runs import wait_for_change
from goldfish.context import ServerContext
from goldfish.db.database import Database


def test_wait_for_change_returns_a_new_version_once_another_connection_commits(project_root: Path) -> None:
    context = ServerContext.open(project_root)
    other = Database(context.paths.database)
    try:
        seen = context.db.data_version()
        with other.transaction() as conn:
            conn.execute("INSERT INTO thoughts (thought, at) VALUES ('noted', '2026-01-01T00:00:00Z')")

        changed = wait_for_change(context, seen, 60.0)
        unchanged = wait_for_change(context, changed, 0.02)
    finally:
        other.close()
        context.close()

    assert changed != seen
    assert unchanged == changed
