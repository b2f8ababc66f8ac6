"""What ``status`` and ``dashboard`` report: one call to recover the whole picture."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from goldfish.db.audit import AuditRepository
from goldfish.db.records import RecordRepository, RecordRow
from goldfish.db.runs import RunRepository
from goldfish.db.svs import SvsRepository
from goldfish.db.warm_pool import WarmPoolRepository
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.memory.overview_models import (
    CLIP,
    MAX_ACTIVE,
    MAX_PENDING,
    Alert,
    AuditEntry,
    DashboardInfo,
    PendingBrief,
    ProjectSummary,
    RunBrief,
    SlotState,
    StatusInfo,
    WorkspaceBest,
    clipped,
)
from goldfish.svs.pattern_service import PatternService
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.models import VersionInfo
from goldfish.workspaces.service import WorkspaceService

RECENT_AUDIT = 5
RECENT_RUNS = 5
MAX_BEST = 10
ALERT_WINDOW = 20


class OverviewService:
    """Builds the status and dashboard views from the database and the slots."""

    def __init__(
        self,
        core: WorkspaceCore,
        workspaces: WorkspaceService,
        audit: AuditRepository,
        runs: RunRepository,
        rows: WorkspaceRepository,
        records: RecordRepository,
        warm_pool: WarmPoolRepository | None = None,
        svs: SvsRepository | None = None,
        patterns: PatternService | None = None,
        host_gpus: Callable[[], dict[str, Any]] | None = None,
    ):
        self._core = core
        self._workspaces = workspaces
        self._audit = audit
        self._runs = runs
        self._rows = rows
        self._records = records
        self._warm_pool = warm_pool
        self._svs = svs
        self._patterns = patterns
        self._host_gpus = host_gpus

    def project(self) -> ProjectSummary:
        """Name, root, goal and size of the project."""
        core = self._core
        return ProjectSummary(
            name=core.config.project_name,
            root=str(core.paths.root),
            goal=core.config.goal,
            workspaces=self._rows.count(),
        )

    def slots(self) -> list[SlotState]:
        """Every configured slot with its workspace, dirtiness and last version."""
        core = self._core
        mounts = {m.slot: m for m in self._rows.mounts()}
        # Each dirty check is a couple of git processes; checking the slots side by side keeps
        # status as fast as checking one. The workers touch no database (no per-thread connection).
        with ThreadPoolExecutor(max_workers=max(1, len(mounts))) as pool:
            checks = pool.map(lambda m: self._workspaces.slot_is_dirty(m.slot, m.workspace), mounts.values())
            dirty = dict(zip(mounts, checks, strict=True))
        states = []
        for slot in core.config.slots:
            mount = mounts.get(slot)
            latest = self._rows.latest_version(mount.workspace_id) if mount else None
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
        """The newest audit rows, reasons shortened."""
        rows, _ = self._audit.page(None, limit, 0)
        return [AuditEntry.of(row, CLIP) for row in rows]

    def pending(self, limit: int) -> list[PendingBrief]:
        """Finished runs without a recorded outcome, oldest first."""
        return [_pending(row) for row in self._records.unfinalized(None, limit)]

    def status(self, state_md: str) -> StatusInfo:
        """The one-call orientation."""
        records = self._records
        return StatusInfo(
            project=self.project(),
            slots=self.slots(),
            active_runs=[RunBrief.of(r) for r in self._runs.active_stage_runs(MAX_ACTIVE)],
            active_runs_total=self._runs.count_active_stage_runs(),
            pending_finalizations=[_pending(r) for r in records.unfinalized(None, MAX_PENDING)],
            pending_finalizations_total=records.count_unfinalized(None),
            recent_audit=self.recent_audit(),
            warm_pool=self.warm_pool_counts(),
            gpus=self.gpus(),
            state_md=state_md,
        )

    def warm_pool_counts(self) -> dict[str, int] | None:
        """GCE warm-pool VMs per state, or None when the pool is not enabled."""
        return self._warm_pool.counts() if self._warm_pool is not None else None

    def gpus(self) -> dict[str, Any] | None:
        """Local GPUs with the stage run holding each (None when this machine has none)."""
        if self._host_gpus is None:
            return None
        found = self._host_gpus()
        if not found.get("count"):
            return None
        held = self._runs.held_gpus()
        for gpu in found["gpus"]:
            gpu["held_by"] = held.get(gpu["index"])
        return found

    def best_results(self) -> list[WorkspaceBest]:
        """The best finalized result of each recently active workspace."""
        found = []
        for ws in self._rows.recently_active(MAX_BEST):
            info = self._core.info(ws)
            if info.best_result is not None:
                found.append(WorkspaceBest(workspace=ws.name, best=info.best_result))
        return found

    def _seen_before(self, stage_run_id: str) -> str:
        note = self._patterns.note_for(stage_run_id) if self._patterns is not None else None
        return f" — {note}; manage_patterns for details" if note else ""

    def _svs_alerts(self) -> list[Alert]:
        """New validation findings (warnings and blocks), naming the stage run."""
        if self._svs is None:
            return []
        return [
            Alert(
                kind=f"svs_{item.finding.mode}",
                message=f"{item.workspace}/{item.stage} ({item.finding.stage_run_id}): "
                f"{clipped(item.finding.message, CLIP)}; get_svs_findings for details",
                at=item.finding.created_at,
            )
            for item in self._svs.recent("", RECENT_RUNS)
        ]

    def dashboard(self) -> DashboardInfo:
        """Alerts, running stages, pending finalizations, best results, slots."""
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
                f"{clipped(run.error or run.failure_kind, CLIP)}" + self._seen_before(run.id),
                at=run.finished_at or run.created_at,
            )
            for state in ("failed", "timed_out")
            for run in self._runs.recent_stage_runs(RECENT_RUNS, state)
        ]
        alerts += self._svs_alerts()
        alerts.sort(key=lambda alert: alert.at, reverse=True)
        by_workspace: dict[str, list[PendingBrief]] = {}
        for item in self.pending(50):
            by_workspace.setdefault(item.workspace, []).append(item)
        return DashboardInfo(
            project=self.project(),
            alerts=alerts,
            running_stages=[RunBrief.of(r) for r in self._runs.active_stage_runs(50)],
            pending_finalizations_by_workspace=by_workspace,
            best_results=self.best_results(),
            slots=self.slots(),
            workspaces_by_activity=[ws.name for ws in self._rows.recently_active(10)],
        )


def _pending(row: RecordRow) -> PendingBrief:
    return PendingBrief(
        record_id=row.id,
        pipeline_run_id=row.pipeline_run_id,
        workspace=row.workspace,
        version=f"v{row.version_num}",
        run_state=row.run_state,
    )
