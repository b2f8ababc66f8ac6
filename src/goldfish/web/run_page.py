"""The run page (``/runs/<id>``): the stage DAG with live states and the selected stage in detail."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from goldfish.runs.models import MetricSeries
from goldfish.web import dag
from goldfish.web.html import (
    attr_json,
    badge,
    chart,
    duration,
    e,
    empty,
    number,
    page,
    result_cell,
    run_link,
    section,
    short_hash,
    size,
    table,
    text_of,
    when,
    workspace_link,
)
from goldfish.web.models import RunDetail, SignalView, StageDetail


def _signals(items: list[SignalView], direction: str) -> str:
    if not items:
        return empty(f"No {direction} recorded.")
    rows = []
    for s in items:
        if direction == "inputs":
            origin = run_link(s.producer_run_id) if s.producer_run_id else e(s.source or "")
        else:
            origin = " ".join(run_link(c) for c in s.consumers) or '<span class="muted">not read yet</span>'
        rows.append(
            [
                f"<b>{e(s.signal)}</b>",
                e(s.type),
                short_hash(s.content_hash),
                e(size(s.size_bytes)),
                origin,
                f'<code class="uri" title="{e(s.uri)}">{e(s.uri)}</code>',
            ]
        )
    return table(
        ["signal", "type", "hash", "size", "from" if direction == "inputs" else "read by", "uri"], rows
    )


def _charts(metrics: list[MetricSeries]) -> str:
    figures = "".join(
        chart(
            [{"label": m.name, "points": m.series}],
            f'<b>{e(m.name)}</b> <span class="muted">last {number(m.last)} · min {number(m.min)}'
            f" · max {number(m.max)} · {m.count} points</span>",
        )
        for m in metrics
    )
    counts = attr_json({m.name: m.count for m in metrics})
    body = figures or empty("No metrics logged.")
    return f'<div class="charts" id="charts" data-counts="{counts}">{body}</div>'


def _attempts(detail: StageDetail) -> str:
    if not detail.attempts:
        return empty("Not launched yet." if not detail.run.cache_hit else "Cache hit: nothing was launched.")
    rows = [
        [
            e(a.get("attempt")),
            badge(str(a.get("state"))),
            e(a.get("zone") or "—"),
            e(a.get("failure_kind") or ""),
            f'<span class="error-text">{e(a.get("error") or "")}</span>',
            when(a.get("started_at")),
            when(a.get("finished_at")),
        ]
        for a in detail.attempts
    ]
    return table(["#", "state", "zone", "failure", "why", "started", "finished"], rows)


STAT_COLUMNS = ("nan_ratio", "mean", "std", "min", "max", "unique_ratio", "entropy")
# How big an output is: values of an array, rows of a table, files of a folder.
SIZE_KEYS = {"count": "values", "rows": "rows", "files": "files"}


def _svs(detail: StageDetail) -> str:
    svs = detail.svs
    note = "" if svs.enabled else '<p class="muted">SVS is switched off in goldfish.yaml.</p>'
    findings = (
        table(
            ["severity", "rule", "finding"],
            [[badge(f.severity), e(f.rule), e(f.message)] for f in svs.findings],
        )
        if svs.findings
        else empty("No SVS findings for this stage.")
    )
    return note + findings + _svs_statistics(svs.statistics)


def _svs_statistics(statistics: dict[str, Any]) -> str:
    """One row per output with the headline statistics the stage computed where its data lay."""
    rows = []
    for signal, stats in statistics.items():
        if not isinstance(stats, dict):
            continue
        size = next((f"{stats[key]} {unit}" for key, unit in SIZE_KEYS.items() if key in stats), "-")
        rows.append(
            [f"<code>{e(signal)}</code>", e(size), *(e(_stat(stats.get(name))) for name in STAT_COLUMNS)]
        )
    return table(["output", "size", *STAT_COLUMNS], rows) if rows else ""


def _stat(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if isinstance(value, int | str) else "…"


def _stage_panel(detail: StageDetail) -> str:
    run = detail.run
    facts = [
        ("stage run", f"<code>{e(run.stage_run_id)}</code>"),
        ("state", badge(run.status, run.stage_run_id, run.elapsed_seconds)),
        ("backend", e(run.backend + (f" · {run.profile}" if run.profile else ""))),
        ("attempt", e(run.attempt)),
        ("exit code", e(run.exit_code if run.exit_code is not None else "—")),
        ("cache", "hit from " + run_link(run.cached_from) if run.cache_hit else e("miss")),
        ("cache key", short_hash(detail.cache_key)),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    error = f'<pre class="error-box">{e(run.error)}</pre>' if run.error else ""
    log_lines = "".join(
        f'<span class="{"err" if line.startswith("[stderr] ") else "out"}">'
        f"{e(line.split('] ', 1)[1] if line.startswith('[') and '] ' in line else line)}\n</span>"
        for line in detail.logs.lines
    )
    logs = (
        f'<pre class="log" id="log" data-cursor="{e(detail.logs.cursor)}"'
        f' data-complete="{str(detail.logs.complete).lower()}">{log_lines}</pre>'
    )
    follow = '<label class="follow"><input type="checkbox" id="follow" checked> follow</label>'
    config = f'<pre class="config">{e(json.dumps(detail.config, indent=2, sort_keys=True))}</pre>'
    return (
        f'<h2 class="stage-title">Stage <span class="mono">{e(run.stage)}</span></h2>'
        f'<div id="stage-facts"><dl class="facts">{dl}</dl>{error}</div>'
        + section("Logs", logs, follow, ident="logs")
        + section("Metrics", _charts(detail.metrics), ident="metrics")
        + section("Inputs", _signals(detail.inputs, "inputs"), ident="inputs")
        + section("Outputs", _signals(detail.outputs, "outputs"), ident="outputs")
        + section("SVS statistics and findings", _svs(detail), ident="svs")
        + section("Attempts", _attempts(detail), ident="attempts")
        + section("Config", config)
    )


def run(view: RunDetail, project: str) -> str:
    """``/runs/<id>``: the stage DAG with live states and the selected stage in detail."""
    selected = view.selected.run.stage_run_id if view.selected else None
    run_path = "/runs/" + quote(view.pipeline_run_id)
    reason = view.reason.get("why") if isinstance(view.reason, dict) else view.reason
    header = (
        '<div class="hero run-hero" id="run-head">'
        f'<div class="crumbs">{workspace_link(view.workspace)} / {e(view.version)}</div>'
        f'<h1><span class="mono">{e(view.pipeline_run_id)}</span> '
        f"{badge(view.state, view.pipeline_run_id)}</h1>"
        f'<p class="goal">{e(text_of(reason))}</p>'
        f'<dl class="facts"><div><dt>started</dt><dd>{when(view.created_at)}</dd></div>'
        f'<div><dt>duration</dt><dd id="run-duration">{e(duration(view.duration_seconds))}</dd></div>'
        f"<div><dt>result</dt><dd>{result_cell(view.result)}</dd></div>"
        f'<div><dt>pipeline</dt><dd class="mono">{e(view.pipeline or "pipeline.yaml")}</dd></div></dl>'
        + (f'<pre class="error-box">{e(view.error)}</pre>' if view.error else "")
        + "</div>"
    )
    graph = section("Stages", f'<div class="dag-wrap">{dag.render(view.stages, run_path, selected)}</div>')
    panel = _stage_panel(view.selected) if view.selected else empty("This run has no stages.")
    live = (
        f'<div id="live" data-run="{e(view.pipeline_run_id)}" data-stage="{e(selected or "")}"'
        f' data-active="{str(view.state == "running").lower()}"></div>'
    )
    return page(view.pipeline_run_id, header + graph + panel + live, project, "runs", "run")
