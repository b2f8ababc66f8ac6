"""The result models of ``status`` and ``dashboard`` (the tools' signatures import them at start)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.runs.models import StageRunInfo
from goldfish.timeutil import age
from goldfish.workspaces.models import BestResult, VersionInfo

if TYPE_CHECKING:
    from goldfish.db.audit import AuditRow
    from goldfish.db.runs import StageRunRow

MAX_ACTIVE = 5
MAX_PENDING = 5
CLIP = 160


class SlotState(BaseModel):
    """One slot and what it holds."""

    slot: str
    path: str
    workspace: str | None
    dirty: bool | None = Field(description="Unsaved changes since the last version (None when empty).")
    last_version: VersionInfo | None


class AuditEntry(BaseModel):
    """A recent state-changing call."""

    at: str
    age: str | None
    tool: str
    workspace: str | None
    outcome: str
    error_code: str | None
    reason: str | None

    @classmethod
    def of(cls, row: AuditRow, clip: int | None = None) -> AuditEntry:
        """Build from a database row (``clip`` shortens the reason for compact views)."""
        return cls(
            at=row.at,
            age=age(row.at),
            tool=row.tool,
            workspace=row.workspace,
            outcome=row.outcome,
            error_code=row.error_code,
            reason=clipped(row.reason, clip) if clip else row.reason,
        )


class AuditDetail(AuditEntry):
    """An audit entry with its arguments and duration."""

    arguments: dict[str, object]
    duration_ms: float

    @classmethod
    def of(cls, row: AuditRow, clip: int | None = None) -> AuditDetail:
        """Build from a database row."""
        return cls(
            **AuditEntry.of(row, clip).model_dump(), arguments=row.arguments, duration_ms=row.duration_ms
        )


def clipped(text: str | None, limit: int | None) -> str | None:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    if text is None or limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class RunBrief(BaseModel):
    """A stage run in one line."""

    stage_run_id: str
    pipeline_run_id: str
    workspace: str
    stage: str
    status: str
    elapsed_seconds: float | None
    error: str | None

    @classmethod
    def of(cls, row: StageRunRow) -> RunBrief:
        """Build from a database row."""
        info = StageRunInfo.of(row)
        return cls(
            stage_run_id=row.id,
            pipeline_run_id=row.pipeline_run_id,
            workspace=row.workspace,
            stage=row.stage,
            status=row.state,
            elapsed_seconds=info.elapsed_seconds,
            error=clipped(row.error, CLIP),
        )


class PendingBrief(BaseModel):
    """A finished run waiting for finalize_run."""

    record_id: str
    pipeline_run_id: str | None
    workspace: str
    version: str
    run_state: str | None


class WorkspaceBest(BaseModel):
    """The best finalized result of one workspace."""

    workspace: str
    best: BestResult


class ProjectSummary(BaseModel):
    """The project itself."""

    name: str
    root: str
    goal: str
    workspaces: int


class StatusInfo(BaseModel):
    """Everything ``status`` shows (bounded: a few kilobytes however long the history is)."""

    project: ProjectSummary
    slots: list[SlotState]
    active_runs: list[RunBrief] = Field(
        description=f"Up to {MAX_ACTIVE} unfinished stage runs, oldest first."
    )
    active_runs_total: int
    pending_finalizations: list[PendingBrief] = Field(description=f"Up to {MAX_PENDING}, oldest first.")
    pending_finalizations_total: int
    recent_audit: list[AuditEntry]
    warm_pool: dict[str, int] | None = Field(
        None, description="GCE warm-pool VMs per state (idle ones cost money), when the pool is enabled."
    )
    gpus: dict[str, Any] | None = Field(
        None, description="This machine's GPUs for local stages: count, source, each with the run holding it."
    )
    state_md: str


class Alert(BaseModel):
    """Something that needs attention."""

    kind: str
    message: str
    at: str


class DashboardInfo(BaseModel):
    """Everything ``dashboard`` shows."""

    project: ProjectSummary
    alerts: list[Alert]
    running_stages: list[RunBrief]
    pending_finalizations_by_workspace: dict[str, list[PendingBrief]]
    best_results: list[WorkspaceBest]
    slots: list[SlotState]
    workspaces_by_activity: list[str]
