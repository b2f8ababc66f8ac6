"""Validation (SVS) tools: get_svs_findings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from goldfish.server.toolkit import ToolRegistry, ToolResult


class SvsFindingsResult(ToolResult):
    """What validation found for a run."""

    svs: dict[str, Any]


def register(reg: ToolRegistry) -> None:
    """Register the validation tools."""

    @reg.tool(read_only=True, idempotent=True, title="SVS findings")
    def get_svs_findings(
        run_id: Annotated[str, Field(description="stage-... or prun-...")],
    ) -> SvsFindingsResult:
        """Validation of a run: pre-run review (who reviewed), contract, output stats, rule findings."""
        return SvsFindingsResult(svs=reg.app.context.svs.findings(run_id))
