"""Data tools: register_source, manage_sources, promote_artifact, list_profiles."""

from typing import Annotated

from pydantic import Field

from goldfish.backends.profiles import Profile
from goldfish.data.sources import SourceAction, SourceInfo
from goldfish.server.toolkit import ChangeReason, JsonMapping, Reason, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page


class SourceResult(ToolResult):
    """One source."""

    source: SourceInfo


class SourcesResult(ToolResult):
    """Sources after the action."""

    sources: list[SourceInfo]
    total: int


class ProfilesResult(ToolResult):
    """Resource profiles."""

    profiles: list[Profile]


def register(reg: ToolRegistry) -> None:
    """Register the data tools."""

    @reg.tool(read_only=False, title="Register source")
    def register_source(
        name: Annotated[
            str, Field(description="Dataset name pipelines refer to (type: dataset, dataset: NAME).")
        ],
        uri: Annotated[
            str, Field(description="gs://..., file://... or a path under the project's data/ folder.")
        ],
        description: Annotated[str, Field(description="What the data is.")],
        reason: Annotated[Reason, Field(description="Why: at least 15 characters.")],
        metadata: Annotated[
            JsonMapping | None, Field(description="Facts about the data (rows, split, origin).")
        ] = None,
    ) -> SourceResult:
        """Register a dataset as a named, immutable source.

        Local files are hashed now and checked at every use; paths outside the allowed folders are
        refused. Returns the source with its hash and size.
        """
        return SourceResult(source=reg.app.context.sources.register(name, uri, description, metadata))

    @reg.tool(
        read_only=False,
        title="Manage sources",
        reads_when=lambda args: args.get("action") in ("list", "get"),
    )
    def manage_sources(
        action: Annotated[SourceAction, Field(description="list, get, update (metadata) or deprecate.")],
        name: Annotated[str | None, Field(description="The source (all actions but list).")] = None,
        metadata: Annotated[JsonMapping | None, Field(description="New metadata for update.")] = None,
        reason: Annotated[ChangeReason, Field(description="Required for update and deprecate.")] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Rows to skip.")] = 0,
    ) -> SourcesResult:
        """List or look up registered sources, update their metadata, or deprecate one."""
        limit, offset = page(limit, offset)
        sources, total = reg.app.context.sources.manage(action, name, metadata, limit, offset)
        return SourcesResult(sources=sources, total=total)

    @reg.tool(read_only=False, title="Promote artifact")
    def promote_artifact(
        run_id: Annotated[str, Field(description="The completed stage run.")],
        output_name: Annotated[str, Field(description="One of its outputs.")],
        source_name: Annotated[str, Field(description="Name of the new source.")],
        reason: Annotated[Reason, Field(description="Why: at least 15 characters.")],
        metadata: Annotated[JsonMapping | None, Field(description="Facts about the data.")] = None,
    ) -> SourceResult:
        """Make a run's output a registered source (e.g. a cleaned dataset), keeping its lineage."""
        promoted = reg.app.context.promotions.promote(run_id, output_name, source_name, metadata)
        return SourceResult(source=promoted)

    @reg.tool(read_only=True, idempotent=True, title="List profiles")
    def list_profiles() -> ProfilesResult:
        """Resource profiles (built-in and from goldfish.yaml): backend, machine type, GPU, spot, zones."""
        return ProfilesResult(profiles=reg.app.context.run_service.profiles())
