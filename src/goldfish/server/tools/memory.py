"""Memory tools: log_thought, get_workspace_thoughts, get_audit_log."""

from typing import Annotated

from pydantic import Field

from goldfish.memory.overview_models import AuditDetail
from goldfish.memory.thoughts import ThoughtInfo
from goldfish.server.toolkit import ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page


class ThoughtResult(ToolResult):
    """The stored thought."""

    thought: ThoughtInfo


class ThoughtsResult(ToolResult):
    """A page of thoughts, newest first."""

    thoughts: list[ThoughtInfo]
    total: int
    limit: int
    offset: int


class AuditResult(ToolResult):
    """A page of audit rows, newest first."""

    entries: list[AuditDetail]
    total: int
    limit: int
    offset: int


def register(reg: ToolRegistry) -> None:
    """Register the memory tools."""

    @reg.tool(read_only=False, title="Log thought")
    def log_thought(
        thought: Annotated[str, Field(description="What you noticed, decided or plan next.")],
        workspace: Annotated[str | None, Field(description="The workspace it is about.")] = None,
        run_id: Annotated[str | None, Field(description="The run it is about.")] = None,
    ) -> ThoughtResult:
        """Write down a thought for your future self; recent ones appear in STATE.md and status()."""
        return ThoughtResult(thought=reg.app.context.thoughts.log(thought, workspace, run_id))

    @reg.tool(read_only=True, idempotent=True, title="Workspace thoughts")
    def get_workspace_thoughts(
        workspace: Annotated[str, Field(description="Workspace name or a slot holding it.")],
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Rows to skip.")] = 0,
    ) -> ThoughtsResult:
        """Thoughts logged about a workspace, newest first."""
        limit, offset = page(limit, offset)
        rows, total = reg.app.context.thoughts.list(workspace, limit, offset)
        return ThoughtsResult(thoughts=rows, total=total, limit=limit, offset=offset)

    @reg.tool(read_only=True, idempotent=True, title="Audit log")
    def get_audit_log(
        workspace: Annotated[str | None, Field(description="Only calls about this workspace.")] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Rows to skip.")] = 0,
    ) -> AuditResult:
        """Every state-changing call, newest first.

        Each row: tool, workspace, reason, arguments (secrets redacted), outcome and duration.
        """
        limit, offset = page(limit, offset)
        # A mounted slot stands for its workspace, as in the rows themselves.
        name = reg.audit_workspace({"workspace": workspace}) if workspace is not None else None
        rows, total = reg.app.context.audit.page(name, limit, offset)
        entries = [AuditDetail.of(row) for row in rows]
        return AuditResult(entries=entries, total=total, limit=limit, offset=offset)
