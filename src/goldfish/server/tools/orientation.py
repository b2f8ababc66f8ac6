"""Orientation tools: status, dashboard, goldfish_version."""

from typing import Any

from pydantic import Field

from goldfish.about import release
from goldfish.memory.overview_models import (
    AuditEntry,
    DashboardInfo,
    PendingBrief,
    ProjectSummary,
    RunBrief,
    SlotState,
)
from goldfish.server.toolkit import ToolRegistry, ToolResult


class StatusResult(ToolResult):
    """Project, slots, recent changes and the STATE.md text."""

    project: ProjectSummary
    slots: list[SlotState]
    active_runs: list[RunBrief]
    active_runs_total: int
    pending_finalizations: list[PendingBrief]
    pending_finalizations_total: int
    recent_audit: list[AuditEntry]
    warm_pool: dict[str, int] | None = Field(
        None, description="GCE warm-pool VMs per state (idle ones cost money), when the pool is enabled."
    )
    gpus: dict[str, Any] | None = Field(None, description="Local GPUs (count, source, run holding each).")
    state_md: str


class DashboardResult(ToolResult):
    """Alerts and the live picture."""

    dashboard: DashboardInfo


class VersionResult(ToolResult):
    """What this server is."""

    package_version: str
    schema_version: int
    backends: list[str]
    project_root: str | None


def register(reg: ToolRegistry) -> None:
    """Register the orientation tools."""

    @reg.tool(read_only=True, idempotent=True, title="Project status")
    def status() -> StatusResult:
        """Start here: one call recovers the whole context after a restart.

        Shows the project, each slot (workspace, unsaved changes, last version), the last five changes
        and the STATE.md text.
        """
        context = reg.app.context
        info = context.overview.status(context.state.render())
        return StatusResult(**info.model_dump())

    @reg.tool(read_only=True, idempotent=True, title="Dashboard")
    def dashboard() -> DashboardResult:
        """Alerts (recent failed changes) plus slots and the most recently active workspaces."""
        return DashboardResult(dashboard=reg.app.context.overview.dashboard())

    @reg.tool(read_only=True, idempotent=True, title="Goldfish version")
    def goldfish_version() -> VersionResult:
        """Package version, database schema version and the execution backends this build provides."""
        root = reg.app.root  # known without waiting for the project to load
        return VersionResult(**release().model_dump(), project_root=str(root.resolve()) if root else None)
