"""Failure patterns: learn from failed stage runs, notice what fixed them, and manage them.

Every failed stage run (of the kinds a code change can cause) is filed under its signature
(:mod:`goldfish.svs.patterns`); a later successful run of the same workspace's stage marks the
pattern fixed by that version. ``manage_patterns`` lists, approves, rejects or deletes them, and
the dashboard tells an agent when a new failure has happened before.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from goldfish.db.svs import FailureSeen
from goldfish.errors import GoldfishError, InvalidArgumentError
from goldfish.svs.patterns import PATTERN_KINDS, TAIL_BYTES, signature_of

if TYPE_CHECKING:
    from goldfish.db.runs import StageRunRow
    from goldfish.db.svs import PatternRepository, PatternRow

log = logging.getLogger("goldfish.svs")
PatternAction = Literal["list", "approve", "reject", "delete"]
_STATUS = {"approve": "approved", "reject": "rejected"}


class PatternNotFoundError(GoldfishError):
    """No failure pattern has that id."""

    code = "PATTERN_NOT_FOUND"
    default_remedy = "Call manage_patterns(action='list') to see pattern ids (pat-...)."


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class PatternService:
    """Files failures under their signatures and answers ``manage_patterns``."""

    def __init__(self, patterns: PatternRepository):
        self._patterns = patterns

    def observe(self, run: StageRunRow, logs_dir: Path) -> None:
        """Learn from a stage run that just ended (never raises: learning must not break a run)."""
        try:
            if run.state == "failed" and run.failure_kind in PATTERN_KINDS:
                found = signature_of(run.failure_kind or "", run.error, _tail(logs_dir / "stderr.log"))
                seen = FailureSeen(
                    found.digest,
                    found.error_type,
                    found.message,
                    found.frame,
                    run.id,
                    run.workspace,
                    run.stage,
                    run.version_num,
                )
                self._patterns.record(seen, f"pat-{secrets.token_hex(6)}")
            elif run.state == "completed":
                self._patterns.resolve(run.workspace, run.stage, run.version_num, run.id)
        except Exception:
            log.exception("could not learn from stage run %s", run.id)

    def describe(self, row: PatternRow) -> dict[str, Any]:
        """A pattern as agents read it."""
        return {
            "pattern_id": row.id,
            "status": row.status,
            "error_type": row.error_type,
            "message": row.message,
            "frame": row.frame,
            "stage": row.stage,
            "occurrences": row.occurrences,
            "versions": self._patterns.versions(row.id),
            "first_seen": row.first_seen,
            "last_seen": row.last_seen,
            "last_run_id": row.last_run_id,
            "fixed_in": row.fixed_in(),
            "fixed_by_run_id": row.fixed_by_run_id,
        }

    def note_for(self, stage_run_id: str) -> str | None:
        """The dashboard's note on a failed stage run seen before ("this failure has happened N times")."""
        found = self._patterns.of_run(stage_run_id)
        if found is None or found[1] < 2 or found[0].status == "rejected":
            return None  # the first time a failure is seen, it is new
        row, nth = found
        fixed = f"; fixed before in {row.fixed_in()}" if row.fixed_in() else ""
        return f"this failure has happened {nth} times ({row.id}: {row.error_type}){fixed}"

    def manage(
        self, action: PatternAction, pattern_id: str | None, limit: int, offset: int
    ) -> dict[str, Any]:
        """List patterns, or approve/reject/delete one."""
        if action == "list":
            rows, total = self._patterns.page(limit, offset)
            return {"patterns": [self.describe(row) for row in rows], "total": total}
        if action not in ("approve", "reject", "delete"):
            raise InvalidArgumentError(
                f"Unknown action {str(action)[:40]!r}.",
                details={"field": "action"},
                remedy="Use list, approve, reject or delete.",
            )
        row = self._patterns.get(str(pattern_id)) if pattern_id else None
        if row is None:
            raise PatternNotFoundError(
                f"No failure pattern {str(pattern_id)[:60]!r}.", details={"pattern_id": str(pattern_id)[:60]}
            )
        if action == "delete":
            self._patterns.delete(row.id)
            return {"patterns": [], "total": 0, "deleted": row.id}
        self._patterns.set_status(row.id, _STATUS[action])
        updated = self._patterns.get(row.id)
        assert updated is not None
        return {"patterns": [self.describe(updated)], "total": 1}
