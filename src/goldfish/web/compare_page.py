"""The compare page (``/compare?runs=a,b``): outcomes, overlaid metric curves, config and code diffs."""

from __future__ import annotations

from goldfish.memory.compare_models import RunComparison
from goldfish.web.html import (
    badge,
    chart,
    e,
    empty,
    page,
    result_cell,
    run_link,
    section,
    table,
    text_of,
    workspace_link,
)
from goldfish.web.models import CompareView


def _compare_form(refs: str) -> str:
    return (
        '<form class="filters" method="get" action="/compare"><label>Runs'
        f' <input name="runs" size="60" value="{e(refs)}" placeholder="prun-…,prun-…"></label>'
        '<button type="submit" class="primary">Compare</button></form>'
    )


def compare_empty(project: str, refs: str = "", error: str | None = None) -> str:
    """``/compare`` without runs (or with runs it could not compare)."""
    note = f'<p class="error-box">{e(error)}</p>' if error else ""
    hint = empty("Pick two to four runs on the Runs page, or paste their ids here.")
    return page(
        "Compare", f"<h1>Compare runs</h1>{_compare_form(refs)}{note}{hint}", project, "compare", "compare"
    )


def _lines(count: int | None) -> str:
    return "bin" if count is None else str(count)


def _code(comparison: RunComparison) -> str:
    code = comparison.code
    if code.same_version:
        return f'<p class="muted">Same code: both ran {e(code.version_a)}.</p>'
    if not code.available:
        return (
            f'<p class="muted">The files of {e(code.version_a)} or {e(code.version_b)} could not be read.</p>'
        )
    rows = [
        [
            f"<code>{e(f.path)}</code>",
            e(f.status),
            f'<span class="plus">+{e(_lines(f.lines_added))}</span>'
            f' <span class="minus">&minus;{e(_lines(f.lines_removed))}</span>',
        ]
        for f in code.files
    ]
    summary = (
        f"<p>{e(code.version_a)} → {e(code.version_b)}: {code.files_changed} files, "
        f'<span class="plus">+{code.lines_added}</span> '
        f'<span class="minus">&minus;{code.lines_removed}</span></p>'
    )
    return summary + (table(["file", "change", "lines"], rows) if rows else "")


def _config_diff(comparison: RunComparison) -> str:
    rows = [
        [
            e(stage.stage_b),
            f"<code>{e(change.path)}</code>",
            e(change.change),
            f'<code class="minus">{e(text_of(change.a))}</code>',
            f'<code class="plus">{e(text_of(change.b))}</code>',
        ]
        for stage in comparison.stages
        for change in stage.config.changes
    ]
    return table(["stage", "key", "change", "a", "b"], rows) if rows else empty("Same config.")


def compare(view: CompareView, project: str) -> str:
    """``/compare?runs=a,b``: outcomes, overlaid curves, config and code diffs."""
    refs = ",".join(r.ref for r in view.runs)
    heads = [
        [
            f'<span class="swatch swatch-{i}"></span>{run_link(r.pipeline_run_id)}',
            workspace_link(r.workspace),
            e(r.version),
            badge(r.state, r.pipeline_run_id),
            result_cell(r.result),
        ]
        for i, r in enumerate(view.runs)
    ]
    outcomes = table(["run", "workspace", "version", "state", "result"], heads)
    charts = "".join(
        chart(
            [s.model_dump(include={"label", "points"}) for s in c.series],
            f'<b>{e(c.metric)}</b> <span class="muted">stage {e(c.stage)}</span>',
        )
        for c in view.curves
    )
    parts = [
        section("Runs", outcomes),
        section(
            "Metric curves",
            f'<div class="charts">{charts}</div>' if charts else empty("No metrics logged by these runs."),
        ),
    ]
    for comparison in view.comparisons:
        title = f"{comparison.pipeline_run_a} → {comparison.pipeline_run_b}"
        summary = "".join(f"<li>{e(line)}</li>" for line in comparison.summary)
        parts.append(
            section(
                title,
                f'<ul class="summary">{summary}</ul><h3>Config</h3>{_config_diff(comparison)}'
                f"<h3>Code</h3>{_code(comparison)}",
            )
        )
    return page(
        "Compare",
        f"<h1>Compare runs</h1>{_compare_form(refs)}" + "".join(parts),
        project,
        "compare",
        "compare",
    )
