"""The dashboard's pages, rendered on the server from the page models of :mod:`goldfish.web.data`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from goldfish.memory.compare_models import RunComparison
from goldfish.memory.overview import RunBrief
from goldfish.runs.models import MetricSeries
from goldfish.web import dag
from goldfish.web.data import (
    CompareView,
    OverviewView,
    RunDetail,
    RunOutcome,
    RunRow,
    RunsPage,
    SignalView,
    StageDetail,
    WorkspaceView,
)
from goldfish.web.html import (
    attr_json,
    badge,
    duration,
    e,
    empty,
    number,
    page,
    run_link,
    section,
    short_hash,
    size,
    table,
    url,
    when,
    workspace_link,
)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _result(result: RunOutcome) -> str:
    if result.finalized and result.value is not None:
        outcome = f' <span class="outcome outcome-{e(result.outcome)}">{e(result.outcome)}</span>'
        return (
            f'<span class="metric">{e(result.primary_metric)} <b>{number(result.value)}</b></span>{outcome}'
        )
    if result.record_id:
        return '<span class="muted">not finalized</span>'
    return '<span class="muted">—</span>'


def _stage_pills(row: RunRow) -> str:
    pills = "".join(
        f'<span class="pip state-{e(s.status)}" title="{e(s.stage)}: {e(s.status)}"'
        f' data-state-of="{e(s.stage_run_id)}" data-active="false"></span>'
        for s in row.stages
    )
    return f'<span class="pips">{pills}</span>'


def run_table(rows: list[RunRow], columns: list[str], compare: bool = True) -> str:
    """The runs table (also on the workspace page)."""
    headers = [
        *([""] if compare else []),
        "run",
        "workspace",
        "version",
        "state",
        "stages",
        "started",
        "duration",
        "result",
        *columns,
    ]
    body = []
    for row in rows:
        check = (
            f'<input type="checkbox" class="pick" value="{e(row.pipeline_run_id)}"'
            f' aria-label="compare {e(row.pipeline_run_id)}">'
        )
        cells = [
            run_link(row.pipeline_run_id),
            workspace_link(row.workspace),
            e(row.version),
            badge(row.state, row.pipeline_run_id),
            _stage_pills(row),
            when(row.created_at),
            e(duration(row.duration_seconds)),
            _result(row.result),
            *(f'<code class="cfg">{e(row.config[c])}</code>' for c in columns),
        ]
        body.append([check, *cells] if compare else cells)
    return table(headers, body, "runs")


# -- overview -------------------------------------------------------------------------------
def _running(briefs: list[RunBrief]) -> str:
    if not briefs:
        return empty("Nothing is running.")
    rows = [
        [
            run_link(b.stage_run_id, b.stage_run_id),
            workspace_link(b.workspace),
            e(b.stage),
            badge(b.status, b.stage_run_id, b.elapsed_seconds),
        ]
        for b in briefs
    ]
    return table(["stage run", "workspace", "stage", "state"], rows)


def overview(view: OverviewView) -> str:
    """``/``: workspaces with their best result, running stages, pending finalizations, alerts."""
    info = view.dashboard
    project = info.project
    cards = []
    ws_rows = []
    for ws in view.workspaces:
        best = ws.best_result
        best_cell = (
            f'<span class="metric">{e(best.metric)} <b>{number(best.value)}</b></span>'
            f' <span class="muted">{e(best.version)}</span>'
            if best
            else '<span class="muted">no finalized result</span>'
        )
        last = ws.last_run
        ws_rows.append(
            [
                f'<b>{workspace_link(ws.name)}</b><div class="sub">{e(ws.goal)}</div>',
                e(ws.versions),
                best_cell,
                (run_link(last.pipeline_run_id) + " " + badge(last.state, last.pipeline_run_id))
                if last
                else "—",
                e(ws.mounted_slot or ""),
            ]
        )
    cards.append(
        section(
            f"Workspaces ({view.workspaces_total})",
            table(["workspace", "versions", "best result", "last run", "slot"], ws_rows)
            if ws_rows
            else empty("No workspaces yet: an agent creates them with create_workspace."),
            ident="workspaces",
            wide=True,
            live=True,
        )
    )
    cards.append(
        section(
            f"Running now ({view.active_runs})", _running(info.running_stages), ident="running", live=True
        )
    )
    pending = [
        [workspace_link(ws), run_link(p.pipeline_run_id), e(p.version), badge(p.run_state or "unknown")]
        for ws, items in info.pending_finalizations_by_workspace.items()
        for p in items
    ]
    cards.append(
        section(
            "Waiting for finalize_run",
            table(["workspace", "run", "version", "run state"], pending)
            if pending
            else empty("Every finished run has a recorded outcome."),
            ident="pending",
            live=True,
        )
    )
    alerts = "".join(
        f'<li class="alert alert-{e(a.kind)}"><span class="kind">{e(a.kind.replace("_", " "))}</span>'
        f"<span>{e(a.message)}</span>{when(a.at)}</li>"
        for a in info.alerts
    )
    alerts_body = f'<ul class="alerts">{alerts}</ul>' if alerts else empty("No alerts.")
    cards.append(section("Alerts", alerts_body, ident="alerts", live=True))
    if view.warm_pool is not None:
        pool = "".join(f"<li><b>{e(n)}</b> {e(state)}</li>" for state, n in sorted(view.warm_pool.items()))
        cards.append(section("GCE warm pool", f'<ul class="counts">{pool}</ul>' if pool else empty("Empty.")))
    head = (
        f'<div class="hero"><h1>{e(project.name)}</h1>'
        f'<p class="goal">{e(project.goal) or "No goal written in goldfish.yaml."}</p>'
        f'<p class="muted mono">{e(project.root)}</p></div>'
    )
    return page(
        "Overview",
        head + '<div class="grid">' + "".join(cards) + "</div>",
        project.name,
        "overview",
        "overview",
    )


# -- runs -----------------------------------------------------------------------------------
def runs(view: RunsPage, project: str) -> str:
    """``/runs``: pipeline runs newest first, filterable, paged."""
    ws_options = "".join(
        f'<option value="{e(n)}"{" selected" if n == view.workspace else ""}>{e(n)}</option>'
        for n in view.workspaces
    )
    st_options = "".join(
        f'<option value="{e(s)}"{" selected" if s == view.state else ""}>{e(s)}</option>' for s in view.states
    )
    filters = (
        '<form class="filters" method="get" action="/runs">'
        '<label>Workspace <select name="workspace"><option value="">all</option>'
        f"{ws_options}</select></label>"
        f'<label>State <select name="state"><option value="">any</option>{st_options}</select></label>'
        '<button type="submit">Filter</button>'
        '<button type="button" id="compare-picked" class="primary" disabled>Compare selected</button></form>'
    )

    def link(n: int, label: str) -> str:
        return f'<a href="{e(url("/runs", workspace=view.workspace, state=view.state, page=n))}">{label}</a>'

    pager = (
        f'<div class="pager">{link(view.page - 1, "← newer") if view.page > 1 else ""}'
        f"<span>page {view.page} of {view.pages} · {view.total} runs</span>"
        f"{link(view.page + 1, 'older →') if view.page < view.pages else ''}</div>"
    )
    body = run_table(view.runs, view.config_columns) if view.runs else empty("No runs match.")
    title = f"Runs{' of ' + view.workspace if view.workspace else ''}"
    return page(
        title,
        f"<h1>{e(title)}</h1>{filters}" + section("", body + pager, ident="runs-table", live=True),
        project,
        "runs",
        "runs",
    )


# -- one run --------------------------------------------------------------------------------
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


def _chart(series: list[dict[str, Any]], caption: str) -> str:
    """A figure the page script draws (one line per series); ``caption`` is markup."""
    return (
        f'<figure class="chart" data-series="{attr_json(series)}"><figcaption>{caption}</figcaption></figure>'
    )


def _charts(metrics: list[MetricSeries]) -> str:
    figures = "".join(
        _chart(
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
        f'<p class="goal">{e(_text(reason))}</p>'
        f'<dl class="facts"><div><dt>started</dt><dd>{when(view.created_at)}</dd></div>'
        f'<div><dt>duration</dt><dd id="run-duration">{e(duration(view.duration_seconds))}</dd></div>'
        f"<div><dt>result</dt><dd>{_result(view.result)}</dd></div>"
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


# -- compare --------------------------------------------------------------------------------
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
            f'<code class="minus">{e(_text(change.a))}</code>',
            f'<code class="plus">{e(_text(change.b))}</code>',
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
            _result(r.result),
        ]
        for i, r in enumerate(view.runs)
    ]
    outcomes = table(["run", "workspace", "version", "state", "result"], heads)
    charts = "".join(
        _chart(
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


# -- workspace ------------------------------------------------------------------------------
def workspace(view: WorkspaceView, project: str) -> str:
    """``/workspaces/<name>``: versions with tags, history, thoughts and recent runs."""
    info = view.detail.workspace
    versions = [
        [
            f"<b>{e(v.version)}</b>",
            "".join(f'<span class="tag">{e(t)}</span>' for t in v.tags),
            e(v.message),
            e(v.source),
            e(v.files_changed),
            when(v.created_at),
            f'<code class="hash">{e(v.commit)}</code>',
        ]
        for v in view.detail.versions
    ]
    history = [
        [
            run_link(r.pipeline_run_id) if r.pipeline_run_id else e(r.record_type),
            e(r.version),
            badge(r.run_state) if r.run_state else "",
            _result(
                RunOutcome(
                    record_id=r.record_id,
                    finalized=r.finalized,
                    primary_metric=r.primary_metric,
                    value=r.value,
                    outcome=r.ml_outcome,
                    direction=r.direction,
                )
            ),
            "".join(f'<span class="tag">{e(t)}</span>' for t in r.tags),
            when(r.created_at),
        ]
        for r in view.history
    ]
    thoughts = "".join(
        f'<li><div class="thought">{e(t.thought)}</div><div class="muted">{when(t.at)}'
        f"{' · ' + run_link(t.run_id) if t.run_id else ''}</div></li>"
        for t in view.thoughts
    )
    best = info.best_result
    best_text = f"{e(best.metric)} <b>{number(best.value)}</b> {e(best.version)}" if best else "—"
    facts = (
        f'<dl class="facts"><div><dt>versions</dt><dd>{info.versions}</dd></div>'
        f"<div><dt>slot</dt><dd>{e(info.mounted_slot or 'not mounted')}</dd></div>"
        f"<div><dt>best</dt><dd>{best_text}</dd></div>"
        f"<div><dt>created</dt><dd>{when(info.created_at)}</dd></div>"
        + (
            f"<div><dt>branched from</dt><dd>{workspace_link(info.parent_workspace)}"
            f" {e(info.parent_version)}</dd></div>"
            if info.parent_workspace
            else ""
        )
        + "</dl>"
    )
    all_runs = f'<a href="{e(url("/runs", workspace=info.name))}">all {view.runs_total} runs →</a>'
    body = (
        f'<div class="hero"><div class="crumbs">workspace</div><h1>{e(info.name)}</h1>'
        f'<p class="goal">{e(info.goal)}</p>{facts}</div>'
        + section(
            "Recent runs",
            run_table(view.runs, [], compare=False) if view.runs else empty("No runs yet."),
            all_runs,
        )
        + '<div class="grid">'
        + section(
            f"Versions ({view.detail.versions_total})",
            table(["version", "tags", "message", "source", "files", "saved", "id"], versions)
            if versions
            else empty("No versions saved yet."),
        )
        + section(
            f"Thoughts ({view.thoughts_total})",
            f'<ul class="thoughts">{thoughts}</ul>' if thoughts else empty("No thoughts logged."),
        )
        + "</div>"
        + section(
            f"Experiment history ({view.history_total})",
            table(["run", "version", "state", "result", "tags", "when"], history)
            if history
            else empty("No experiment records yet."),
        )
    )
    return page(info.name, body, project, "", "workspace")


def error(project: str, status: int, code: str, message: str, remedy: str | None) -> str:
    """A page for a run, workspace or page that does not exist, or a bad parameter."""
    body = (
        f'<div class="hero"><h1>{status}: {e(code)}</h1><p class="goal">{e(message)}</p>'
        + (f'<p class="muted">{e(remedy)}</p>' if remedy else "")
        + '<p><a href="/">← back to the overview</a></p></div>'
    )
    return page(code, body, project, "", "error")
