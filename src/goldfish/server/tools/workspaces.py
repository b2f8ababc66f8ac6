"""Workspace tools: create, list, mount, hibernate, inspect, delete."""

from typing import Annotated, Literal

from pydantic import Field

from goldfish.server.toolkit import Reason, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page
from goldfish.workspaces.models import (
    DeleteInfo,
    HibernateInfo,
    MountInfo,
    WorkspaceDetail,
    WorkspaceInfo,
)

Why = Annotated[Reason, Field(description="Why you do this: one sentence, at least 15 characters.")]
Limit = Annotated[int, Field(description="Page size, 1 to 200.")]
Offset = Annotated[int, Field(description="Rows to skip.")]


class WorkspaceResult(ToolResult):
    """One workspace."""

    workspace: WorkspaceInfo


class WorkspaceListResult(ToolResult):
    """A page of workspaces."""

    workspaces: list[WorkspaceInfo]
    total: int
    limit: int
    offset: int


class MountResult(ToolResult):
    """The slot to edit in, and the workspace's context."""

    mount: MountInfo


class HibernateResult(ToolResult):
    """The slot emptied."""

    hibernate: HibernateInfo


class InspectResult(ToolResult):
    """Everything about one workspace."""

    inspect: WorkspaceDetail


class DeleteResult(ToolResult):
    """The workspace removed."""

    deleted: DeleteInfo


def register(reg: ToolRegistry) -> None:
    """Register the workspace tools."""

    @reg.tool(read_only=False, title="Create workspace")
    def create_workspace(
        name: Annotated[
            str, Field(description="1-64 letters, digits, _ or -, starting with a letter or digit.")
        ],
        goal: Annotated[str, Field(description="What this line of work is trying to achieve.")],
        reason: Why,
        from_workspace: Annotated[
            str | None, Field(description="Start from this workspace's latest files.")
        ] = None,
        from_version: Annotated[
            str | None, Field(description="With from_workspace: start from this version (vN or a tag).")
        ] = None,
    ) -> WorkspaceResult:
        """Create a workspace: an isolated line of work with its own versions.

        It starts empty, or from another workspace (its latest files or one of its versions). Mount it
        into a slot to edit.
        """
        info = reg.app.context.workspaces.create(name, goal, from_workspace, from_version)
        return WorkspaceResult(workspace=info)

    @reg.tool(read_only=True, idempotent=True, title="List workspaces")
    def list_workspaces(limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> WorkspaceListResult:
        """List workspaces by name: goal, mounted slot, number of versions, latest version."""
        limit, offset = page(limit, offset)
        items, total = reg.app.context.workspaces.list(limit, offset)
        return WorkspaceListResult(workspaces=items, total=total, limit=limit, offset=offset)

    @reg.tool(read_only=False, idempotent=True, title="Mount workspace")
    def mount(
        workspace: Annotated[str, Field(description="Workspace name.")],
        slot: Annotated[str, Field(description="An empty slot, e.g. w1 (see status).")],
        reason: Why,
    ) -> MountResult:
        """Put a workspace's latest files into an empty slot (workspaces/<slot>) as plain files to edit.

        Returns the slot path and the workspace's context (goal, latest version, recent thoughts).
        """
        return MountResult(mount=reg.app.context.workspaces.mount(workspace, slot))

    @reg.tool(read_only=False, title="Hibernate slot")
    def hibernate(
        slot: Annotated[str, Field(description="The slot to empty.")],
        reason: Why,
    ) -> HibernateResult:
        """Free a slot: unsaved changes are saved as a new version first, then the slot is emptied.

        Files excluded by .goldfishignore are not versioned and are removed (listed in the result).
        """
        return HibernateResult(hibernate=reg.app.context.workspaces.hibernate(slot))

    @reg.tool(read_only=True, idempotent=True, title="Inspect workspace")
    def inspect_workspace(
        name: Annotated[str, Field(description="Workspace name or a slot holding it.")],
        version_limit: Annotated[int, Field(description="Versions to list, 1 to 200.")] = 10,
        version_offset: Annotated[int, Field(description="Versions to skip.")] = 0,
        include: Annotated[
            list[Literal["pipeline"]], Field(description="Extras: 'pipeline' adds pipeline.yaml.")
        ]
        | None = None,
    ) -> InspectResult:
        """Goal, versions with tags (newest first), slot and unsaved changes, and where it was forked from."""
        limit, offset = page(version_limit, version_offset)
        detail = reg.app.context.workspaces.inspect(name, limit, offset, list(include or []))
        return InspectResult(inspect=detail)

    @reg.tool(read_only=False, destructive=True, title="Delete workspace")
    def delete_workspace(
        workspace: Annotated[str, Field(description="Workspace name.")],
        reason: Why,
    ) -> DeleteResult:
        """Delete a workspace.

        Refused while it is mounted. Its saved history is kept hidden for provenance and the name
        becomes free again.
        """
        return DeleteResult(deleted=reg.app.context.workspaces.delete(workspace))
