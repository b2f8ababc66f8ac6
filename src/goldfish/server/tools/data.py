"""Data tools: register_source, manage_sources, promote_artifact, list_profiles."""

from typing import Annotated

from pydantic import Field

from goldfish.backends.profiles import Profile, all_profiles
from goldfish.data.sources import SourceAction, SourceInfo
from goldfish.errors import InvalidArgumentError
from goldfish.server.toolkit import JsonMapping, ToolRegistry, ToolResult
from goldfish.validation import DEFAULT_LIMIT, page
from goldfish.validation import reason as check_reason


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
        reason: Annotated[str, Field(description="Why: at least 15 characters.")],
        metadata: Annotated[
            JsonMapping | None, Field(description="Facts about the data (rows, split, origin).")
        ] = None,
    ) -> SourceResult:
        """Register a dataset as a named, immutable source.

        Local files are hashed now and checked at every use; paths outside the allowed folders are
        refused. Returns the source with its hash and size.
        """
        check_reason(reason)
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
        reason: Annotated[str | None, Field(description="Required for update and deprecate.")] = None,
        limit: Annotated[int, Field(description="Page size, 1 to 200.")] = DEFAULT_LIMIT,
        offset: Annotated[int, Field(description="Rows to skip.")] = 0,
    ) -> SourcesResult:
        """List or look up registered sources, update their metadata, or deprecate one."""
        limit, offset = page(limit, offset)
        if action in ("update", "deprecate"):
            check_reason(reason)
        sources, total = reg.app.context.sources.manage(action, name, metadata, limit, offset)
        return SourcesResult(sources=sources, total=total)

    @reg.tool(read_only=False, title="Promote artifact")
    def promote_artifact(
        run_id: Annotated[str, Field(description="The completed stage run.")],
        output_name: Annotated[str, Field(description="One of its outputs.")],
        source_name: Annotated[str, Field(description="Name of the new source.")],
        reason: Annotated[str, Field(description="Why: at least 15 characters.")],
        metadata: Annotated[JsonMapping | None, Field(description="Facts about the data.")] = None,
    ) -> SourceResult:
        """Make a run's output a registered source (e.g. a cleaned dataset), keeping its lineage."""
        check_reason(reason)
        context = reg.app.context
        row = context.run_queries.stage_run(run_id)
        outputs = {item.signal: item for item in context.runs.lineage(row.id, "output")}
        if row.state != "completed" or output_name not in outputs:
            raise InvalidArgumentError(
                f"Run {row.id} has no stored output '{output_name}'.",
                details={"run_id": row.id, "state": row.state, "outputs": sorted(outputs)},
            )
        item = outputs[output_name]
        origin = item.producer_run_id or row.id
        from goldfish.storage.paths import RunPaths  # noqa: PLC0415 - loaded at first call, not at server start

        uri = context.storage.uri(RunPaths(origin).output(output_name))
        source = context.sources.promote(
            source_name, uri, item.content_hash, item.size_bytes, row.id, output_name, metadata
        )
        return SourceResult(source=source)

    @reg.tool(read_only=True, idempotent=True, title="List profiles")
    def list_profiles() -> ProfilesResult:
        """Resource profiles (built-in and from goldfish.yaml): backend, machine type, GPU, spot, zones."""
        return ProfilesResult(profiles=list(all_profiles(reg.app.context.config).values()))
