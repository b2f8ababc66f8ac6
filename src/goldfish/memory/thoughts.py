"""Thoughts an agent logs for its future self."""

from __future__ import annotations

from typing import TYPE_CHECKING

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.timeutil import age
from goldfish.validation import text

if TYPE_CHECKING:
    from goldfish.db.thoughts import ThoughtRepository, ThoughtRow
    from goldfish.workspaces.core import WorkspaceCore

MAX_THOUGHT_LENGTH = 8000
RUN_ID_MAX = 100


class ThoughtInfo(BaseModel):
    """One thought."""

    id: int
    at: str
    age: str | None
    workspace: str | None
    run_id: str | None
    thought: str

    @classmethod
    def of(cls, row: ThoughtRow) -> ThoughtInfo:
        """Build from a database row."""
        return cls(
            id=row.id,
            at=row.at,
            age=age(row.at),
            workspace=row.workspace,
            run_id=row.run_id,
            thought=row.thought,
        )


class ThoughtService:
    """Stores and lists thoughts; a named workspace must exist."""

    def __init__(self, core: WorkspaceCore, rows: ThoughtRepository):
        self._core = core
        self._rows = rows

    def log(self, thought: str, workspace: str | None, run_id: str | None) -> ThoughtInfo:
        """Store a thought, optionally about a workspace and a run."""
        text(thought, "thought", MAX_THOUGHT_LENGTH)
        name = self._core.workspace_or_slot(workspace).name if workspace is not None else None
        if run_id is not None:
            text(run_id, "run_id", RUN_ID_MAX)
        return ThoughtInfo.of(self._rows.add(thought.strip(), name, run_id))

    def list(self, workspace: str | None, limit: int, offset: int) -> tuple[list[ThoughtInfo], int]:
        """Newest thoughts first."""
        name = self._core.workspace_or_slot(workspace).name if workspace is not None else None
        rows, total = self._rows.page(name, limit, offset)
        return [ThoughtInfo.of(row) for row in rows], total
