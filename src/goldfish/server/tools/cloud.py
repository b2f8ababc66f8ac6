"""Cloud tools: warm_pool_status, warm_pool_cleanup."""

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.server.toolkit import Reason, ToolRegistry, ToolResult


class WarmPoolStatusResult(ToolResult):
    """The warm pool: settings and the VMs it holds."""

    enabled: bool
    max_instances: int
    idle_timeout_minutes: float
    profiles: list[str] = Field(description="Profiles the pool serves; empty = all.")
    by_state: dict[str, int] = Field(description="Live VMs per state (launching, busy, idle, claimed, ...).")
    instances: list[dict[str, Any]] = Field(
        description="Each live VM: name, state, profile, zone, spot, current_run, jobs_run, idle_seconds."
    )


class WarmPoolCleanupResult(ToolResult):
    """What a cleanup deleted."""

    deleted: list[str] = Field(description="Names of the VMs deleted (or whose deletion was finished).")
    force: bool


def register(reg: ToolRegistry) -> None:
    """Register the cloud tools."""

    @reg.tool(read_only=True, idempotent=True, title="Warm pool status")
    def warm_pool_status() -> WarmPoolStatusResult:
        """The GCE warm pool: whether it is on, its caps, and every live VM with its state and run.

        Reads the project database only (no cloud call).
        """
        return WarmPoolStatusResult(**reg.app.context.warm_pool().summary())

    @reg.tool(
        read_only=False, destructive=True, idempotent=True, open_world=True, title="Clean up the warm pool"
    )
    async def warm_pool_cleanup(
        ctx: Context,
        reason: Annotated[Reason, Field(description="Why (at least 15 characters).")],
        force: Annotated[
            bool, Field(description="Also delete VMs that are busy with a run (their runs end as lost).")
        ] = False,
    ) -> WarmPoolCleanupResult:
        """Delete idle warm-pool VMs and repair VMs stuck in launching or deleting.

        Without force, VMs running a job are left alone. Idle VMs past their deadline are deleted
        automatically anyway; this stops the cost of the rest now.
        """
        pool = reg.app.context.warm_pool()
        deleted = await anyio.to_thread.run_sync(lambda: pool.cleanup(force=force))
        return WarmPoolCleanupResult(deleted=deleted, force=force)
