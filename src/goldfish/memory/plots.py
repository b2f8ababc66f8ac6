"""Metric curves of a few stage runs drawn into one PNG, with the numbers that were drawn.

matplotlib is optional (``pip install 'goldfish-mcp[plot]'``): it is imported only when a plot is
drawn, through its object API (``Figure``, rendered by Agg), so no global pyplot state is touched
and plots can be drawn from worker threads.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from goldfish.errors import GoldfishError, InvalidArgumentError
from goldfish.ids import PIPELINE_RUN_ID
from goldfish.result_model import ResultModel as BaseModel  # validators built at first use

if TYPE_CHECKING:
    from goldfish.db.metrics import MetricRepository
    from goldfish.db.runs import StageRunRow
    from goldfish.runs.queries import RunQueries

MAX_RUNS = 8
MAX_POINTS_PER_RUN = 2000
MAX_METRIC_NAME = 200
FIGURE_INCHES = (9.0, 5.0)
FIGURE_DPI = 100


class PlotUnavailableError(GoldfishError):
    """matplotlib is not installed where the server runs."""

    code = "PLOT_UNAVAILABLE"
    default_remedy = "Install the plot extra where Goldfish runs: pip install 'goldfish-mcp[plot]'."


class MetricNotFoundError(GoldfishError):
    """None of the runs logged the metric."""

    code = "METRIC_NOT_FOUND"
    default_remedy = "Pick a metric from details.available (get_metrics lists a run's metrics)."


class PlottedRun(BaseModel):
    """One run's curve: what was drawn, and the run's full aggregates of the metric."""

    run_id: str
    stage: str
    workspace: str
    version: str
    label: str = Field(description="The legend entry.")
    count: int = Field(description="Points the run logged (0: it never logged the metric).")
    points_drawn: int = Field(description="Points drawn after downsampling (at most 2000).")
    last: float | None
    last_step: int | None
    min: float | None
    max: float | None
    first_x: int | None = Field(description="x of the first point drawn.")
    last_x: int | None = Field(description="x of the last point drawn.")
    points: list[tuple[int, float]] | None = Field(
        None, description="The (x, value) pairs drawn; only with include_points."
    )


class MetricPlot(BaseModel):
    """The numbers behind a plot."""

    metric: str
    x_axis: Literal["step", "point", "step or point"] = Field(
        description="step: the logged steps; point: the n-th logged value (no steps were logged)."
    )
    runs: list[PlottedRun]
    missing: list[str] = Field(description="Runs that never logged the metric (nothing drawn for them).")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")


@dataclass(frozen=True)
class RenderedPlot:
    """A PNG and the numbers drawn into it."""

    png: bytes
    plot: MetricPlot


@dataclass(frozen=True)
class _Curve:
    row: StageRunRow
    info: PlottedRun
    xs: list[int]
    ys: list[float]
    steps_known: bool  # every point drawn carries a logged step


class MetricPlotter:
    """Draws one metric of 1 to 8 stage runs."""

    def __init__(self, queries: RunQueries, metrics: MetricRepository):
        self._queries = queries
        self._metrics = metrics

    def plot(self, run_ids: list[str], metric: str, include_points: bool = False) -> RenderedPlot:
        """A PNG of ``metric`` over steps for each run, plus the numbers drawn."""
        ids = _run_ids(run_ids)
        name = _metric_name(metric)
        rows = [self._stage_run(run_id) for run_id in ids]
        curves = [self._curve(row, name, include_points) for row in rows]
        drawn = [curve for curve in curves if curve.xs]
        if not drawn:
            available = sorted({s.name for row in rows for s in self._metrics.summaries(_source(row))})
            raise MetricNotFoundError(
                f"None of the runs logged a metric named {name!r}.",
                details={"metric": name, "run_ids": ids, "available": available[:100]},
            )
        axis = _axis([curve.steps_known for curve in drawn])
        png, width, height = render_png(
            name, axis, [(curve.info.label, curve.xs, curve.ys) for curve in drawn]
        )
        plot = MetricPlot(
            metric=name,
            x_axis=axis,
            runs=[curve.info for curve in curves],
            missing=[curve.row.id for curve in curves if not curve.xs],
            width=width,
            height=height,
        )
        return RenderedPlot(png=png, plot=plot)

    def _stage_run(self, run_id: str) -> StageRunRow:
        if PIPELINE_RUN_ID.fullmatch(run_id):
            stages = self._queries.pipeline_info(self._queries.pipeline_run(run_id)).stages
            raise InvalidArgumentError(
                f"{run_id} is a pipeline run; plot_metrics draws stage runs.",
                details={"field": "run_ids", "stage_run_ids": {s.stage: s.stage_run_id for s in stages}},
                remedy="Pass stage run ids from details.stage_run_ids (the stage that logs the metric).",
            )
        return self._queries.stage_run(run_id)

    def _curve(self, row: StageRunRow, name: str, include_points: bool) -> _Curve:
        summaries = self._metrics.summaries(_source(row), [name])
        summary = summaries[0] if summaries else None
        sampled = (
            self._metrics.sampled(_source(row), name, summary.count, MAX_POINTS_PER_RUN) if summary else []
        )
        xs = [step if step is not None else seq for seq, step, _ in sampled]
        ys = [value for _, _, value in sampled]
        info = PlottedRun(
            run_id=row.id,
            stage=row.stage,
            workspace=row.workspace,
            version=f"v{row.version_num}",
            label=f"{row.stage} {row.id} ({row.workspace} v{row.version_num})",
            count=summary.count if summary else 0,
            points_drawn=len(sampled),
            last=summary.last if summary else None,
            last_step=summary.last_step if summary else None,
            min=summary.min if summary else None,
            max=summary.max if summary else None,
            first_x=xs[0] if xs else None,
            last_x=xs[-1] if xs else None,
            points=list(zip(xs, ys, strict=True)) if include_points else None,
        )
        steps_known = all(step is not None for _, step, _ in sampled)
        return _Curve(row=row, info=info, xs=xs, ys=ys, steps_known=steps_known)


def _source(row: StageRunRow) -> str:
    """A cache hit's metrics are those of the run it reused."""
    return row.cached_from or row.id


def _axis(steps_known: list[bool]) -> Literal["step", "point", "step or point"]:
    if all(steps_known):
        return "step"
    if not any(steps_known):
        return "point"
    return "step or point"


def _run_ids(run_ids: object) -> list[str]:
    if not isinstance(run_ids, list) or not 1 <= len(run_ids) <= MAX_RUNS:
        raise InvalidArgumentError(
            f"run_ids must list 1 to {MAX_RUNS} stage run ids.",
            details={"field": "run_ids", "given": len(run_ids) if isinstance(run_ids, list) else None},
        )
    if not all(isinstance(item, str) for item in run_ids):
        raise InvalidArgumentError("run_ids must be stage run ids (stage-...).", details={"field": "run_ids"})
    return list(dict.fromkeys(run_ids))


def _metric_name(metric: object) -> str:
    if not isinstance(metric, str) or not metric.strip() or len(metric) > MAX_METRIC_NAME:
        raise InvalidArgumentError(
            f"metric must be a metric name (1 to {MAX_METRIC_NAME} characters).", details={"field": "metric"}
        )
    return metric


def render_png(
    metric: str, axis: str, curves: list[tuple[str, list[int], list[float]]]
) -> tuple[bytes, int, int]:
    """Draw ``curves`` (label, xs, ys) into a PNG; returns its bytes, width and height in pixels.

    Raises:
        PlotUnavailableError: when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415 - optional and heavy: only when drawing
    except ImportError:
        raise PlotUnavailableError(
            "Plotting needs matplotlib, which is not installed where Goldfish runs.",
            details={"missing": "matplotlib"},
        ) from None
    figure = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI, layout="tight")
    axes = figure.add_subplot()
    for label, xs, ys in curves:
        marker = "o" if len(xs) <= 50 else None
        axes.plot(xs, ys, label=label, linewidth=1.5, marker=marker, markersize=3)
    axes.set_title(metric)
    axes.set_xlabel(axis)
    axes.set_ylabel(metric)
    axes.grid(visible=True, alpha=0.3)
    axes.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = buffer.getvalue()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk follows the 8-byte signature
    return png, int(width), int(height)
