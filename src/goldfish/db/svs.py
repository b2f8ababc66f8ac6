"""SQL of stage validation (SVS): rule findings, pre-run reviews, failure patterns."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from goldfish.db.database import Database
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class FindingRow:
    """One recorded rule finding of a stage run's output."""

    id: int
    stage_run_id: str
    signal: str
    rule: str
    column: str | None
    mode: str
    bound: dict[str, Any]
    observed: float | None
    message: str
    created_at: str

    def as_json(self) -> dict[str, Any]:
        """What agents read (no row id)."""
        return {
            "signal": self.signal,
            "rule": self.rule,
            "column": self.column,
            "mode": self.mode,
            "bound": self.bound,
            "observed": self.observed,
            "message": self.message,
        }


@dataclass(frozen=True)
class ReviewRow:
    """The pre-run review recorded on a pipeline run."""

    pipeline_run_id: str
    reviewed_by: str
    why: str | None
    findings: list[dict[str, Any]]
    model_text: str | None
    blocked: bool
    created_at: str

    def as_json(self) -> dict[str, Any]:
        """What agents read."""
        return {
            "reviewed_by": self.reviewed_by,
            "why": self.why,
            "findings": self.findings,
            "model_text": self.model_text,
            "blocked": self.blocked,
            "at": self.created_at,
        }


@dataclass(frozen=True)
class RecentFinding:
    """A finding with the stage run it belongs to (dashboard alerts)."""

    finding: FindingRow
    workspace: str
    stage: str
    pipeline_run_id: str


def _finding(row: sqlite3.Row) -> FindingRow:
    return FindingRow(
        id=row["id"],
        stage_run_id=row["stage_run_id"],
        signal=row["signal"],
        rule=row["rule"],
        column=row["column_name"],
        mode=row["mode"],
        bound=json.loads(row["bound"] or "{}"),
        observed=row["observed"],
        message=row["message"],
        created_at=row["created_at"],
    )


class SvsRepository:
    """SQL for ``svs_findings`` and ``svs_reviews``."""

    def __init__(self, db: Database):
        self._db = db

    def add_findings(self, stage_run_id: str, findings: list[dict[str, Any]]) -> None:
        """Record the rule findings of one stage run (``Finding.as_json`` dicts)."""
        if not findings:
            return
        at = now_iso()
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO svs_findings (stage_run_id, signal, rule, column_name, mode, bound, observed,"
                " message, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        stage_run_id,
                        f["signal"],
                        f["rule"],
                        f.get("column"),
                        f["mode"],
                        json.dumps(f.get("bound") or {}),
                        f.get("observed"),
                        f["message"],
                        at,
                    )
                    for f in findings
                ],
            )

    def findings(self, stage_run_id: str) -> list[FindingRow]:
        """Findings of one stage run, in the order they were made."""
        rows = self._db.connection.execute(
            "SELECT * FROM svs_findings WHERE stage_run_id = ? ORDER BY id", (stage_run_id,)
        )
        return [_finding(row) for row in rows]

    def recent(self, since: str, limit: int) -> list[RecentFinding]:
        """The newest findings made after ``since``, with their stage run's workspace and stage."""
        rows = self._db.connection.execute(
            "SELECT f.*, s.workspace, s.stage, s.pipeline_run_id FROM svs_findings f"
            " JOIN stage_runs s ON s.id = f.stage_run_id"
            " WHERE f.created_at >= ? ORDER BY f.created_at DESC, f.id DESC LIMIT ?",
            (since, limit),
        )
        return [
            RecentFinding(_finding(row), row["workspace"], row["stage"], row["pipeline_run_id"])
            for row in rows
        ]

    def save_review(
        self,
        pipeline_run_id: str,
        reviewed_by: str,
        why: str | None,
        findings: list[dict[str, Any]],
        model_text: str | None,
        blocked: bool,
    ) -> None:
        """Record (or replace) the pre-run review of a pipeline run."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO svs_reviews (pipeline_run_id, reviewed_by, why, findings, model_text,"
                " blocked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    pipeline_run_id,
                    reviewed_by,
                    why,
                    json.dumps(findings),
                    model_text,
                    int(blocked),
                    now_iso(),
                ),
            )

    def review(self, pipeline_run_id: str) -> ReviewRow | None:
        """The pre-run review of a pipeline run, if one was recorded."""
        row = self._db.connection.execute(
            "SELECT * FROM svs_reviews WHERE pipeline_run_id = ?", (pipeline_run_id,)
        ).fetchone()
        if row is None:
            return None
        return ReviewRow(
            row["pipeline_run_id"],
            row["reviewed_by"],
            row["why"],
            json.loads(row["findings"]),
            row["model_text"],
            bool(row["blocked"]),
            row["created_at"],
        )
