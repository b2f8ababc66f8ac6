"""Version tools: save_version, rollback, diff, manage_versions."""

from typing import Annotated

from pydantic import Field

from goldfish.server.toolkit import ChangeReason, Reason, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page
from goldfish.workspaces.models import DiffInfo, SaveInfo, VersionAction, VersionsPage


class SaveResult(ToolResult):
    """The version saved (or the current one when nothing changed)."""

    save: SaveInfo


class DiffResult(ToolResult):
    """What differs."""

    diff: DiffInfo


class VersionsResult(ToolResult):
    """Versions after the action."""

    versions: VersionsPage


def register(reg: ToolRegistry) -> None:
    """Register the version tools."""

    @reg.tool(read_only=False, title="Save version")
    def save_version(
        slot: Annotated[str, Field(description="The slot whose files to save.")],
        message: Annotated[str, Field(description="What changed and why.")],
    ) -> SaveResult:
        """Save the slot's files as the workspace's next version (vN).

        Files deleted in the slot are deleted in the version. When nothing changed, no version is made
        and created is false.
        """
        return SaveResult(save=reg.app.context.versions.save(slot, message))

    @reg.tool(read_only=False, destructive=True, title="Roll back")
    def rollback(
        slot: Annotated[str, Field(description="The slot to roll back.")],
        version: Annotated[str, Field(description="Version to return to: vN or a tag.")],
        reason: Annotated[Reason, Field(description="Why: one sentence, at least 15 characters.")],
    ) -> SaveResult:
        """Make the slot's files match an earlier version and record that as a new version.

        Unsaved changes are saved first, so nothing is lost.
        """
        return SaveResult(save=reg.app.context.versions.rollback(slot, version))

    @reg.tool(read_only=True, idempotent=True, title="Diff")
    def diff(
        target: Annotated[
            str, Field(description="A slot (w1), a workspace (ws) or a version (ws@v3, ws@tag).")
        ],
        against: Annotated[
            str | None,
            Field(
                description="What to compare with (same forms). Default: a slot "
                "or mounted workspace vs its last version; a version vs the one "
                "before it."
            ),
        ] = None,
    ) -> DiffResult:
        """File-level changes with line counts, plus a unified diff (cut at 200 kB)."""
        return DiffResult(diff=reg.app.context.versions.diff(target, against))

    @reg.tool(
        read_only=False,
        destructive=True,
        title="Manage versions",
        reads_when=lambda args: args.get("action") == "list",
    )
    def manage_versions(
        workspace: Annotated[str, Field(description="Workspace name or a slot holding it.")],
        action: Annotated[
            VersionAction, Field(description="list, tag, untag, prune, unprune, prune_before_tag.")
        ],
        version: Annotated[str | None, Field(description="vN for tag/prune/unprune of one version.")] = None,
        tag: Annotated[str | None, Field(description="Tag name for tag, untag and prune_before_tag.")] = None,
        from_version: Annotated[str | None, Field(description="Start of a range for prune/unprune.")] = None,
        to_version: Annotated[str | None, Field(description="End of a range for prune/unprune.")] = None,
        reason: Annotated[ChangeReason, Field(description="Required for every action but list.")] = None,
        include_pruned: Annotated[bool, Field(description="List pruned versions too.")] = False,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Versions to skip.")] = 0,
    ) -> VersionsResult:
        """List versions, tag/untag one, or prune (hide) versions.

        Pruning is reversible (unprune) and never touches tagged versions; prune_before_tag hides
        every untagged version older than a tag.
        """
        limit, offset = page(limit, offset)
        result = reg.app.context.versions.manage(
            workspace,
            action,
            version=version,
            tag=tag,
            from_version=from_version,
            to_version=to_version,
            include_pruned=include_pruned,
            limit=limit,
            offset=offset,
        )
        return VersionsResult(versions=result)
