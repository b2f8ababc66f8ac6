"""Thoughts: short notes an agent leaves for its future self."""

from __future__ import annotations

from dataclasses import dataclass

from goldfish.db.database import Database
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class ThoughtRow:
    """One logged thought."""

    id: int
    at: str
    workspace: str | None
    run_id: str | None
    thought: str


class ThoughtRepository:
    """SQL for the ``thoughts`` table."""

    def __init__(self, db: Database):
        self._db = db

    def add(self, thought: str, workspace: str | None, run_id: str | None) -> ThoughtRow:
        """Store a thought and return it."""
        at = now_iso()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO thoughts (at, workspace, run_id, thought) VALUES (?, ?, ?, ?)",
                (at, workspace, run_id, thought),
            )
        return ThoughtRow(int(cursor.lastrowid or 0), at, workspace, run_id, thought)

    def page(self, workspace: str | None, limit: int, offset: int) -> tuple[list[ThoughtRow], int]:
        """Newest thoughts first, for one workspace or all, with the total."""
        where, params = ("WHERE workspace = ?", [workspace]) if workspace else ("", [])
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM thoughts {where}", params).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            f"SELECT id, at, workspace, run_id, thought FROM thoughts {where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [ThoughtRow(row[0], row[1], row[2], row[3], row[4]) for row in rows], int(total)
