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


@dataclass(frozen=True)
class PatternRow:
    """A failure pattern: one error signature and the failed stage runs that share it."""

    id: str
    stage: str
    error_type: str
    message: str
    frame: str | None
    status: str
    occurrences: int
    first_seen: str
    last_seen: str
    last_run_id: str | None
    fixed_in_workspace: str | None
    fixed_in_version: int | None
    fixed_by_run_id: str | None

    def fixed_in(self) -> str | None:
        """``<workspace> vN`` where a later run of the stage succeeded, if one did."""
        if self.fixed_in_workspace is None:
            return None
        return f"{self.fixed_in_workspace} v{self.fixed_in_version}"


def _pattern(row: sqlite3.Row) -> PatternRow:
    return PatternRow(
        id=row["id"],
        stage=row["stage"],
        error_type=row["error_type"],
        message=row["message"],
        frame=row["frame"],
        status=row["status"],
        occurrences=row["occurrences"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        last_run_id=row["last_run_id"],
        fixed_in_workspace=row["fixed_in_workspace"],
        fixed_in_version=row["fixed_in_version"],
        fixed_by_run_id=row["fixed_by_run_id"],
    )


@dataclass(frozen=True)
class FailureSeen:
    """One failed stage run to file under its signature."""

    digest: str
    error_type: str
    message: str
    frame: str | None
    stage_run_id: str
    workspace: str
    stage: str
    version_num: int


class PatternRepository:
    """SQL for ``failure_patterns`` and ``failure_pattern_runs``."""

    def __init__(self, db: Database):
        self._db = db

    def record(self, seen: FailureSeen, new_id: str) -> PatternRow:
        """File a failed stage run under its signature (a new pattern gets ``new_id``); the pattern after."""
        at = now_iso()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO failure_patterns (id, signature, stage, error_type, message, frame,"
                " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id, seen.digest, seen.stage, seen.error_type, seen.message, seen.frame, at, at),
            )
            pattern_id = conn.execute(
                "SELECT id FROM failure_patterns WHERE signature = ?", (seen.digest,)
            ).fetchone()[0]
            added = conn.execute(
                "INSERT OR IGNORE INTO failure_pattern_runs (pattern_id, stage_run_id, workspace, stage,"
                " version_num, at) VALUES (?, ?, ?, ?, ?, ?)",
                (pattern_id, seen.stage_run_id, seen.workspace, seen.stage, seen.version_num, at),
            ).rowcount
            if added:
                conn.execute(
                    "UPDATE failure_patterns SET occurrences = occurrences + 1, last_seen = ?,"
                    " last_run_id = ? WHERE id = ?",
                    (at, seen.stage_run_id, pattern_id),
                )
            row = conn.execute("SELECT * FROM failure_patterns WHERE id = ?", (pattern_id,)).fetchone()
        return _pattern(row)

    def resolve(self, workspace: str, stage: str, version_num: int, stage_run_id: str) -> int:
        """Mark the open patterns of a workspace's stage fixed by a successful run; how many."""
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE failure_patterns SET fixed_in_workspace = ?, fixed_in_version = ?,"
                " fixed_by_run_id = ? WHERE fixed_by_run_id IS NULL AND id IN"
                " (SELECT pattern_id FROM failure_pattern_runs"
                " WHERE workspace = ? AND stage = ? AND version_num <= ?)",
                (workspace, version_num, stage_run_id, workspace, stage, version_num),
            ).rowcount

    def of_run(self, stage_run_id: str) -> tuple[PatternRow, int] | None:
        """The pattern a failed stage run was filed under, and how many times it had happened by then."""
        row = self._db.connection.execute(
            "SELECT p.*, (SELECT COUNT(*) FROM failure_pattern_runs e WHERE e.pattern_id = p.id"
            " AND (e.at < r.at OR (e.at = r.at AND e.rowid <= r.rowid))) AS nth"
            " FROM failure_patterns p JOIN failure_pattern_runs r ON r.pattern_id = p.id"
            " WHERE r.stage_run_id = ?",
            (stage_run_id,),
        ).fetchone()
        return (_pattern(row), int(row["nth"])) if row is not None else None

    def get(self, pattern_id: str) -> PatternRow | None:
        """One pattern by id."""
        row = self._db.connection.execute(
            "SELECT * FROM failure_patterns WHERE id = ?", (pattern_id,)
        ).fetchone()
        return _pattern(row) if row is not None else None

    def page(self, limit: int, offset: int) -> tuple[list[PatternRow], int]:
        """Patterns, most recently seen first, and how many there are."""
        conn = self._db.connection
        total = int(conn.execute("SELECT COUNT(*) FROM failure_patterns").fetchone()[0])
        rows = conn.execute(
            "SELECT * FROM failure_patterns ORDER BY last_seen DESC, id LIMIT ? OFFSET ?", (limit, offset)
        )
        return [_pattern(row) for row in rows], total

    def versions(self, pattern_id: str, limit: int = 20) -> list[str]:
        """``<workspace> vN`` of the failed runs of a pattern, oldest first."""
        rows = self._db.connection.execute(
            "SELECT workspace, version_num, MIN(at) AS first FROM failure_pattern_runs WHERE pattern_id = ?"
            " GROUP BY workspace, version_num ORDER BY first LIMIT ?",
            (pattern_id, limit),
        )
        return [f"{row['workspace']} v{row['version_num']}" for row in rows]

    def set_status(self, pattern_id: str, status: str) -> None:
        """Approve or reject a pattern."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE failure_patterns SET status = ? WHERE id = ?", (status, pattern_id))

    def delete(self, pattern_id: str) -> None:
        """Forget a pattern (its runs stay; a new failure with the signature starts a new one)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM failure_pattern_runs WHERE pattern_id = ?", (pattern_id,))
            conn.execute("DELETE FROM failure_patterns WHERE id = ?", (pattern_id,))
