"""Small HTML building blocks: escaping, the page frame, badges, times and tables.

Pages are plain strings built from these helpers; every value from the project goes through
:func:`e` (HTML-escaped) or :func:`attr_json` (JSON in an attribute), so no text a run wrote can
become markup.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from goldfish.states import TERMINAL, PipelineState, StageState
from goldfish.timeutil import age
from goldfish.web.models import RunOutcome

NAV = (("overview", "/", "Overview"), ("runs", "/runs", "Runs"), ("compare", "/compare", "Compare"))


def e(value: object) -> str:
    """``value`` as HTML-escaped text (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def attr_json(value: Any) -> str:
    """``value`` as JSON, escaped for a double-quoted attribute."""
    return html.escape(json.dumps(value, separators=(",", ":")), quote=True)


def url(path: str, **query: object) -> str:
    """``path`` with the query parameters that are not None (values URL-quoted)."""
    parts = [f"{key}={quote(str(value), safe=',')}" for key, value in query.items() if value is not None]
    return path + ("?" + "&".join(parts) if parts else "")


def is_active(state: str) -> bool:
    """True while a stage or pipeline run in ``state`` can still change."""
    if state == PipelineState.RUNNING:
        return True
    try:
        return StageState(state) not in TERMINAL
    except ValueError:
        return False


def badge(state: str, run_id: str | None = None, elapsed: float | None = None) -> str:
    """A coloured state pill; with ``run_id`` it updates in place while the run is live."""
    live = f' data-state-of="{e(run_id)}" data-active="{str(is_active(state)).lower()}"' if run_id else ""
    timer = (
        f' <span class="elapsed" data-elapsed>{e(duration(elapsed))}</span>' if elapsed is not None else ""
    )
    label = e(state.replace("_", " "))
    return f'<span class="badge state-{e(state)}"{live}><span data-state-text>{label}</span>{timer}</span>'


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s`` or ``4.2s``; an em dash for None."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def when(iso: str | None) -> str:
    """A ``<time>`` showing how long ago, the exact time on hover."""
    if iso is None:
        return '<span class="muted">—</span>'
    return f'<time datetime="{e(iso)}" title="{e(iso)}">{e(age(iso))}</time>'


def number(value: float | None) -> str:
    """A metric value, compact (``0.8123``, ``1.2e-05``); an em dash for None."""
    return "—" if value is None else f"{value:.4g}"


def size(value: int | None) -> str:
    """Bytes as ``12.3 MB``; an em dash for None."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"  # pragma: no cover - the loop always returns


def short_hash(value: str | None) -> str:
    """The first 12 characters of a hash, the whole one on hover."""
    if not value:
        return '<span class="muted">—</span>'
    return f'<code class="hash" title="{e(value)}">{e(value[:12])}</code>'


def run_link(run_id: str | None, label: str | None = None) -> str:
    """A link to a run's page (pipeline or stage run)."""
    if not run_id:
        return '<span class="muted">—</span>'
    return f'<a class="mono" href="{e(url("/runs/" + quote(run_id)))}">{e(label or run_id)}</a>'


def workspace_link(name: str) -> str:
    """A link to a workspace's page."""
    return f'<a href="/workspaces/{e(quote(name))}">{e(name)}</a>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table of already-rendered cells (headers are escaped)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table class="{e(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def empty(text: str) -> str:
    """A muted line saying there is nothing to show."""
    return f'<p class="empty">{e(text)}</p>'


def section(
    title: str, body: str, extra: str = "", ident: str | None = None, wide: bool = False, live: bool = False
) -> str:
    """A titled card (``wide``: across the whole grid; ``live``: re-rendered in place, needs ``ident``)."""
    anchor = f' id="{e(ident)}"' if ident else ""
    anchor += " data-refresh" if live and ident else ""
    classes = "card wide" if wide else "card"
    return f'<section class="{classes}"{anchor}><header><h2>{e(title)}</h2>{extra}</header>{body}</section>'


def page(title: str, body: str, project: str, nav: str, page_kind: str) -> str:
    """The full HTML document: header with the project and navigation, then ``body``."""
    current = ' class="current"'
    links = "".join(
        f'<a href="{href}"{current if key == nav else ""}>{label}</a>' for key, href, label in NAV
    )
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · {e(project)} · Goldfish</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script>'
        f'</head><body data-page="{e(page_kind)}">'
        '<header class="top"><a class="brand" href="/">'
        '<img src="/static/favicon.svg" alt="" width="22" height="22">'
        f'<span>Goldfish</span></a><span class="project">{e(project)}</span><nav>{links}</nav></header>'
        f"<main>{body}</main></body></html>"
    )


def text_of(value: Any) -> str:
    """A config value or reason as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def result_cell(result: RunOutcome) -> str:
    """The result cell of a run: its primary metric and outcome once finalized."""
    if result.finalized and result.value is not None:
        outcome = f' <span class="outcome outcome-{e(result.outcome)}">{e(result.outcome)}</span>'
        return (
            f'<span class="metric">{e(result.primary_metric)} <b>{number(result.value)}</b></span>{outcome}'
        )
    if result.record_id:
        return '<span class="muted">not finalized</span>'
    return '<span class="muted">—</span>'


def chart(series: list[dict[str, Any]], caption: str) -> str:
    """A figure the page script draws (one line per series); ``caption`` is markup."""
    return (
        f'<figure class="chart" data-series="{attr_json(series)}"><figcaption>{caption}</figcaption></figure>'
    )
