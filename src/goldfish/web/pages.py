"""The dashboard's listing pages: overview, runs table, workspace, and the error page.

Rendered on the server from the page models of :mod:`goldfish.web.models`; the run page is
:mod:`goldfish.web.run_page`, the compare page :mod:`goldfish.web.compare_page`.
"""

from __future__ import annotations

from goldfish.memory.overview_models import RunBrief
from goldfish.web.html import (
    badge,
    duration,
    e,
    empty,
    number,
    page,
    result_cell,
    run_link,
    section,
    table,
    url,
    when,
    workspace_link,
)
from goldfish.web.models import OverviewView, RunOutcome, RunRow, RunsPage, WorkspaceView


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
            result_cell(row.result),
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
            result_cell(
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
