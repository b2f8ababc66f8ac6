"""The stage DAG of a run as inline SVG: columns by dependency depth, one box per stage run."""

from __future__ import annotations

from goldfish.web.html import duration, e, is_active, url
from goldfish.web.models import StageNode

NODE_W = 176
NODE_H = 54
GAP_X = 64
GAP_Y = 20
PAD = 8


def depths(nodes: list[StageNode]) -> dict[str, int]:
    """Column of each stage: 0 for stages reading no other stage, else one past its deepest producer."""
    deps = {node.stage: [d for d in node.depends_on if d != node.stage] for node in nodes}
    found: dict[str, int] = {}

    def depth(stage: str, trail: frozenset[str]) -> int:
        if stage in found:
            return found[stage]
        producers = [d for d in deps.get(stage, []) if d in deps and d not in trail]
        value = 1 + max((depth(d, trail | {stage}) for d in producers), default=-1)
        found[stage] = value
        return value

    for node in nodes:
        depth(node.stage, frozenset())
    return found


def render(nodes: list[StageNode], run_path: str, selected: str | None) -> str:
    """The SVG of ``nodes``; each box links to ``run_path?stage=<name>`` and updates in place."""
    if not nodes:
        return ""
    column = depths(nodes)
    rows: dict[int, int] = {}
    places: dict[str, tuple[int, int]] = {}
    for node in nodes:
        col = column[node.stage]
        places[node.stage] = (col, rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    width = PAD * 2 + (max(rows) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values()) * (NODE_H + GAP_Y) - GAP_Y

    def origin(stage: str) -> tuple[int, int]:
        col, row = places[stage]
        return PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)

    edges = []
    for node in nodes:
        x2, y2 = origin(node.stage)
        for producer in node.depends_on:
            if producer not in places or producer == node.stage:
                continue
            x1, y1 = origin(producer)
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            bend = (ex - sx) // 2
            edges.append(
                f'<path class="dag-edge" d="M{sx},{sy} C{sx + bend},{sy} {ex - bend},{ey} {ex},{ey}"'
                ' marker-end="url(#arrow)"/>'
            )
    boxes = []
    for node in nodes:
        x, y = origin(node.stage)
        chosen = " selected" if node.stage_run_id == selected else ""
        cached = " · cached" if node.cache_hit else ""
        href = e(url(run_path, stage=node.stage))
        boxes.append(
            f'<a href="{href}" aria-label="stage {e(node.stage)}">'
            f'<g class="dag-node state-{e(node.status)}{chosen}" data-state-of="{e(node.stage_run_id)}"'
            f' data-active="{str(is_active(node.status)).lower()}" data-stage="{e(node.stage)}"'
            f' transform="translate({x},{y})">'
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="9"/>'
            f'<circle class="dag-dot" cx="16" cy="19" r="5"/>'
            f'<text class="dag-name" x="28" y="23">{e(node.stage)}</text>'
            f'<text class="dag-status" x="16" y="42">'
            f"<tspan data-state-text>{e(node.status.replace('_', ' '))}</tspan><tspan> · </tspan>"
            f"<tspan data-elapsed>{e(duration(node.elapsed_seconds))}"
            f"</tspan>{e(cached)}</text></g></a>"
        )
    return (
        f'<svg class="dag" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
        ' aria-label="stage graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
        f' class="dag-arrow"/></marker></defs>{"".join(edges)}{"".join(boxes)}</svg>'
    )
