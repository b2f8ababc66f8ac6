"""Validation (SVS) tools: get_svs_findings, review_pipeline, manage_patterns."""

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.server.toolkit import ChangeReason, ToolRegistry, ToolResult
from goldfish.svs.pattern_service import PatternAction
from goldfish.validation import DEFAULT_LIMIT, page

REVIEW_REASON = "pre-run review requested through review_pipeline"


class SvsFindingsResult(ToolResult):
    """What validation found for a run."""

    svs: dict[str, Any]


class ReviewResult(ToolResult):
    """The pre-run review of a workspace as it is now."""

    review: dict[str, Any] | None


class PatternsResult(ToolResult):
    """Failure patterns."""

    patterns: dict[str, Any]


def register(reg: ToolRegistry) -> None:
    """Register the validation tools."""

    @reg.tool(read_only=True, idempotent=True, title="SVS findings")
    def get_svs_findings(
        run_id: Annotated[str, Field(description="stage-... or prun-...")],
    ) -> SvsFindingsResult:
        """Validation of a run: pre-run review (who reviewed), contract, output stats, rule findings."""
        return SvsFindingsResult(svs=reg.app.context.svs.findings(run_id))

    @reg.tool(read_only=True, idempotent=True, open_world=True, title="Review pipeline")
    async def review_pipeline(
        ctx: Context,
        workspace: Annotated[str, Field(description="Workspace or slot.")],
        stages: Annotated[list[str] | None, Field(description="Default: all.")] = None,
        pipeline: Annotated[str | None, Field(description="Named pipeline.")] = None,
    ) -> ReviewResult:
        """The pre-run review run() does, of the files as they are now; nothing runs. null if turned off."""
        context = reg.app.context
        service = context.run_service
        request = service.build_request(
            workspace, stages, pipeline, None, None, REVIEW_REASON, None, None, True, True, None
        )
        from goldfish.server.sampling import reviewers_for  # noqa: PLC0415 - loaded at first call, not at server start

        reviewers = reviewers_for(ctx, context.config.svs.review_model)
        review = await anyio.to_thread.run_sync(service.review, request, reviewers)
        return ReviewResult(review=review.as_json() if review is not None else None)

    @reg.tool(
        read_only=False,
        destructive=True,
        title="Failure patterns",
        reads_when=lambda a: a.get("action") == "list",
    )
    def manage_patterns(
        action: PatternAction,
        pattern_id: Annotated[str | None, Field(description="pat-... (not for list)")] = None,
        reason: Annotated[ChangeReason, Field(description="Why (not for list).")] = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> PatternsResult:
        """Failure patterns learned from failed runs (signature, count, versions, what fixed it)."""
        limit, offset = page(limit, offset)
        return PatternsResult(patterns=reg.app.context.patterns.manage(action, pattern_id, limit, offset))
