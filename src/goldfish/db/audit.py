"""Audit rows: one per state-changing tool call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from goldfish.db.database import Database
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class AuditRow:
    """What a state-changing call did, and how it ended."""

    id: int
    at: str
    tool: str
    workspace: str | None
    reason: str | None
    arguments: dict[str, Any]
    outcome: str
    error_code: str | None
    duration_ms: float


class AuditRepository:
    """SQL for the ``audit`` table."""

    def __init__(self, db: Database):
        self._db = db

    def record(
        self,
        tool: str,
        workspace: str | None,
        reason: str | None,
        arguments: dict[str, Any],
        outcome: str,
        error_code: str | None,
        duration_ms: float,
    ) -> None:
        """Write one row (arguments must already be redacted)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, tool, workspace, reason, arguments, outcome, error_code, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now_iso(),
                    tool,
                    workspace,
                    reason,
                    json.dumps(arguments, default=str),
                    outcome,
                    error_code,
                    round(duration_ms, 3),
                ),
            )

    def page(self, workspace: str | None, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        """Newest rows first, optionally for one workspace, with the total."""
        where, params = ("WHERE workspace = ?", [workspace]) if workspace else ("", [])
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM audit {where}", params).fetchone()[0]  # noqa: S608
        query = f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ? OFFSET ?"  # noqa: S608
        rows = conn.execute(query, [*params, limit, offset])
        return [
            AuditRow(
                id=row["id"],
                at=row["at"],
                tool=row["tool"],
                workspace=row["workspace"],
                reason=row["reason"],
                arguments=json.loads(row["arguments"]),
                outcome=row["outcome"],
                error_code=row["error_code"],
                duration_ms=row["duration_ms"],
            )
            for row in rows
        ], int(total)
