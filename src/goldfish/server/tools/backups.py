"""Backup tools: create_backup, list_backups, restore_backup."""

from typing import TYPE_CHECKING, Annotated

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.backups.models import BackupInfo, RestoreInfo
from goldfish.server.toolkit import Reason, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page

if TYPE_CHECKING:
    from goldfish.backups.service import Progress


class BackupResult(ToolResult, BackupInfo):
    """The backup just taken (its fields at the top level, as list_backups shows each)."""


class BackupsResult(ToolResult):
    """Backups at backup.destination, newest first."""

    backups: list[BackupInfo]
    total: int


class RestoreResult(ToolResult, RestoreInfo):
    """The restored project and its checks."""


def _reporter(ctx: Context) -> "Progress":
    """MCP progress notifications from the worker thread a backup or restore runs on."""

    def report(step: int, steps: int, message: str) -> None:
        anyio.from_thread.run(ctx.report_progress, float(step), float(steps), message)

    return report


def register(reg: ToolRegistry) -> None:
    """Register the backup tools."""

    @reg.tool(read_only=False, open_world=True, title="Create backup")
    async def create_backup(
        reason: Annotated[Reason, Field(description="Why: at least 15 characters.")],
        ctx: Context,
        include_outputs: Annotated[bool, Field(description="Also copy run outputs (can be large).")] = False,
    ) -> BackupResult:
        """Back up the project while it runs: database, every version, goldfish.yaml, run logs and metrics.

        Goes to backup.destination (default .goldfish/backups, or gs://). Secrets are never included.
        Returns backup_id, size_bytes, location and counts.
        """
        backups = reg.app.context.backups
        info = await anyio.to_thread.run_sync(
            lambda: backups.create(reason, include_outputs, progress=_reporter(ctx))
        )
        return BackupResult(**info.model_dump())

    @reg.tool(read_only=True, idempotent=True, open_world=True, title="List backups")
    def list_backups(
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Backups to skip.")] = 0,
    ) -> BackupsResult:
        """Backups, newest first: backup_id, created, size_bytes, location, counts."""
        limit, offset = page(limit, offset)
        found, total = reg.app.context.backups.listing(limit, offset)
        return BackupsResult(backups=found, total=total)

    @reg.tool(read_only=False, destructive=True, open_world=True, title="Restore backup")
    async def restore_backup(
        backup_id: Annotated[str, Field(description="From list_backups (bk-...).")],
        reason: Annotated[Reason, Field(description="Why: at least 15 characters.")],
        ctx: Context,
        target: Annotated[
            str | None,
            Field(description="An empty or new folder to restore into; omit to restore in place."),
        ] = None,
    ) -> RestoreResult:
        """Restore a backup into an empty folder, or in place.

        In place is refused with RUNS_ACTIVE while runs are active, and first backs up the current
        state. Returns the checks the restored project passed (integrity, versions) and its counts.
        """
        backups = reg.app.context.backups
        info = await anyio.to_thread.run_sync(
            lambda: backups.restore(backup_id, target, progress=_reporter(ctx))
        )
        if target is None:
            await anyio.to_thread.run_sync(reg.app.reload)
        return RestoreResult(**info.model_dump())
