"""Validation (SVS) tools: get_svs_findings, review_pipeline."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from goldfish.server.sampling import reviewers_for
from goldfish.server.toolkit import ToolRegistry, ToolResult

REVIEW_REASON = "pre-run review requested through review_pipeline"


class SvsFindingsResult(ToolResult):
    """What validation found for a run."""

    svs: dict[str, Any]


class ReviewResult(ToolResult):
    """The pre-run review of a workspace as it is now."""

    review: dict[str, Any] | None


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
        reviewers = reviewers_for(ctx, context.config.svs.review_model)
        review = await anyio.to_thread.run_sync(service.review, request, reviewers)
        return ReviewResult(review=review.as_json() if review is not None else None)
