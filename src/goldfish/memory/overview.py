"""What ``status`` and ``dashboard`` report: one call to recover the whole picture."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from goldfish.db.audit import AuditRepository, AuditRow
from goldfish.db.runs import RunRepository
from goldfish.runs.models import StageRunInfo
from goldfish.timeutil import age
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.models import VersionInfo
from goldfish.workspaces.service import WorkspaceService

RECENT_AUDIT = 5
RECENT_RUNS = 5
MAX_ACTIVE = 50
ALERT_WINDOW = 20


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
    def of(cls, row: AuditRow) -> AuditEntry:
        """Build from a database row."""
        return cls(
            at=row.at,
            age=age(row.at),
            tool=row.tool,
            workspace=row.workspace,
            outcome=row.outcome,
            error_code=row.error_code,
            reason=row.reason,
        )


class AuditDetail(AuditEntry):
    """An audit entry with its arguments and duration."""

    arguments: dict[str, object]
    duration_ms: float

    @classmethod
    def of(cls, row: AuditRow) -> AuditDetail:
        """Build from a database row."""
        return cls(**AuditEntry.of(row).model_dump(), arguments=row.arguments, duration_ms=row.duration_ms)


class ProjectSummary(BaseModel):
    """The project itself."""

    name: str
    root: str
    goal: str
    workspaces: int


class StatusInfo(BaseModel):
    """Everything ``status`` shows."""

    project: ProjectSummary
    slots: list[SlotState]
    active_runs: list[StageRunInfo]
    recent_runs: list[StageRunInfo]
    recent_audit: list[AuditEntry]
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
    running_stages: list[StageRunInfo]
    slots: list[SlotState]
    workspaces_by_activity: list[str]


class OverviewService:
    """Builds the status and dashboard views from the database and the slots."""

    def __init__(
        self, core: WorkspaceCore, workspaces: WorkspaceService, audit: AuditRepository, runs: RunRepository
    ):
        self._core = core
        self._workspaces = workspaces
        self._audit = audit
        self._runs = runs

    def project(self) -> ProjectSummary:
        """Name, root, goal and size of the project."""
        core = self._core
        return ProjectSummary(
            name=core.config.project_name,
            root=str(core.paths.root),
            goal=core.config.goal,
            workspaces=core.rows.count(),
        )

    def slots(self) -> list[SlotState]:
        """Every configured slot with its workspace, dirtiness and last version."""
        core = self._core
        mounts = {m.slot: m for m in core.rows.mounts()}
        # Each dirty check is a couple of git processes; checking the slots side by side keeps
        # status as fast as checking one. The workers touch no database (no per-thread connection).
        with ThreadPoolExecutor(max_workers=max(1, len(mounts))) as pool:
            checks = pool.map(lambda m: self._workspaces.slot_is_dirty(m.slot, m.workspace), mounts.values())
            dirty = dict(zip(mounts, checks, strict=True))
        states = []
        for slot in core.config.slots:
            mount = mounts.get(slot)
            latest = core.rows.latest_version(mount.workspace_id) if mount else None
            states.append(
                SlotState(
                    slot=slot,
                    path=str(core.paths.slot(slot)),
                    workspace=mount.workspace if mount else None,
                    dirty=dirty.get(slot),
                    last_version=VersionInfo.of(latest) if latest else None,
                )
            )
        return states

    def recent_audit(self, limit: int = RECENT_AUDIT) -> list[AuditEntry]:
        """The newest audit rows."""
        rows, _ = self._audit.page(None, limit, 0)
        return [AuditEntry.of(row) for row in rows]

    def status(self, state_md: str) -> StatusInfo:
        """The one-call orientation."""
        return StatusInfo(
            project=self.project(),
            slots=self.slots(),
            active_runs=self.active_runs(),
            recent_runs=[StageRunInfo.of(r) for r in self._runs.recent_stage_runs(RECENT_RUNS)],
            recent_audit=self.recent_audit(),
            state_md=state_md,
        )

    def active_runs(self) -> list[StageRunInfo]:
        """Stage runs that are not finished, oldest first."""
        return [StageRunInfo.of(r) for r in self._runs.active_stage_runs(MAX_ACTIVE)]

    def dashboard(self) -> DashboardInfo:
        """Alerts (recent failed changes) plus slots and the most active workspaces."""
        alerts = [
            Alert(
                kind="failed_call",
                message=f"{entry.tool} failed with {entry.error_code}"
                + (f" on {entry.workspace}" if entry.workspace else ""),
                at=entry.at,
            )
            for entry in self.recent_audit(ALERT_WINDOW)
            if entry.outcome == "error"
        ]
        alerts += [
            Alert(
                kind="failed_run",
                message=f"{run.workspace}/{run.stage} ({run.id}) {run.state}: "
                f"{run.error or run.failure_kind}",
                at=run.finished_at or run.created_at,
            )
            for state in ("failed", "timed_out")
            for run in self._runs.recent_stage_runs(RECENT_RUNS, state)
        ]
        alerts.sort(key=lambda alert: alert.at, reverse=True)
        active = [ws.name for ws in self._core.rows.recently_active(10)]
        return DashboardInfo(
            project=self.project(),
            alerts=alerts,
            running_stages=self.active_runs(),
            slots=self.slots(),
            workspaces_by_activity=active,
        )
