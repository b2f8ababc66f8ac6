"""Analysis tools: compare_runs, plot_metrics."""

import base64
import json
from typing import Annotated

from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from goldfish.memory.compare_models import RunComparison
from goldfish.memory.plots import MetricPlot
from goldfish.server.toolkit import ToolRegistry, ToolResult


class CompareRunsResult(ToolResult):
    """What differs between two runs."""

    comparison: RunComparison


class PlotMetricsResult(ToolResult):
    """The numbers drawn into the PNG that comes with this result as an image block."""

    plot: MetricPlot


def register(reg: ToolRegistry) -> None:
    """Register the analysis tools."""

    @reg.tool(read_only=True, idempotent=True, title="Compare runs")
    def compare_runs(
        run_a: Annotated[
            str,
            Field(description="The earlier/baseline run: a stage run id, prun-..., record id, or @tag."),
        ],
        run_b: Annotated[str, Field(description="The run to compare with it (same kinds of ref).")],
        workspace: Annotated[
            str | None, Field(description="Workspace of @tag refs (only needed for those).")
        ] = None,
    ) -> CompareRunsResult:
        """What differs from run a to run b, and what came of it.

        Config diff (keys added/removed/changed, dotted paths), code diff summary (files changed
        between the two versions, with line counts), metric deltas (last/min/max, b - a), results
        deltas (from finalize_run) and input differences (content hash, producer run, source).
        Two stage run ids compare those stage runs; two whole runs (prun-..., record ids, @tag)
        are compared stage by stage, pairing stages by name.
        """
        return CompareRunsResult(comparison=reg.app.context.comparer.compare(run_a, run_b, workspace))

    @reg.tool(read_only=True, idempotent=True, title="Plot metrics")
    def plot_metrics(
        run_ids: Annotated[list[str], Field(description="1 to 8 stage run ids (stage-...) to draw.")],
        metric: Annotated[str, Field(description="The metric to draw, e.g. loss (get_metrics lists them).")],
        include_points: Annotated[
            bool, Field(description="Also return every (x, value) pair drawn (up to 2000 per run).")
        ] = False,
    ) -> Annotated[CallToolResult, PlotMetricsResult]:
        """A PNG of one metric's curves over steps for 1 to 8 stage runs, plus the numbers drawn.

        Returns an image block and, per run, the points logged and drawn and last/min/max, so
        you can read the curves and check the numbers. Long runs are downsampled to 2000 points.
        """
        rendered = reg.app.context.plotter.plot(run_ids, metric, include_points)
        payload = PlotMetricsResult(plot=rendered.plot).model_dump(mode="json")
        data = base64.b64encode(rendered.png).decode()
        image = ImageContent(type="image", data=data, mime_type="image/png")
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(payload)), image], structured_content=payload
        )
