"""Text the ``goldfish demo`` prints: tables of stages, lineage, run comparison and next steps.

Pure formatting of tool results (plain dicts); nothing here talks to the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_METRICS = ("rows", "loss", "train_acc", "val_loss", "val_acc")


@dataclass
class RunOutcome:
    """One ``run`` call of the demo: what it returned and the last value of each stage's metrics."""

    label: str
    run: dict[str, Any]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    lr: str = "-"

    @property
    def stages(self) -> list[dict[str, Any]]:
        """The stage runs, in pipeline order."""
        stages: list[dict[str, Any]] = self.run["stages"]
        return stages

    @property
    def ok(self) -> bool:
        """True when every stage completed."""
        return bool(self.stages) and all(s["status"] == "completed" for s in self.stages)

    def stage(self, name: str) -> dict[str, Any]:
        """The stage run of stage ``name``."""
        return next(s for s in self.stages if s["stage"] == name)

    def primary(self, spec: dict[str, Any]) -> float | None:
        """The primary metric as the last stage logged it (evaluate's val_acc in the demo)."""
        for stage in reversed(self.stages):
            value = self.metrics.get(stage["stage"], {}).get(spec["primary_metric"])
            if value is not None:
                return value
        return None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned plain-text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def _metrics_text(values: dict[str, float]) -> str:
    shown = [(name, values[name]) for name in KEY_METRICS if name in values]
    return "  ".join(
        f"{name}={value:g}" if name == "rows" else f"{name}={value:.3f}" for name, value in shown
    )


def _duration(stage: dict[str, Any]) -> str:
    if stage["cache_hit"]:
        return "cached"
    seconds = stage.get("elapsed_seconds")
    return f"{seconds:.1f}s" if isinstance(seconds, (int, float)) else "-"


def stage_table(outcome: RunOutcome) -> str:
    """Stage, run id, status, duration and key metrics of one pipeline run."""
    rows = []
    for stage in outcome.stages:
        cached = f" (from {stage['cached_from']})" if stage["cache_hit"] else ""
        rows.append(
            [
                stage["stage"],
                stage["stage_run_id"],
                stage["status"] + cached,
                _duration(stage),
                _metrics_text(outcome.metrics.get(stage["stage"], {})),
            ]
        )
    return table(["stage", "run id", "status", "time", "last metrics"], rows)


def verdict(value: float | None, spec: dict[str, Any]) -> str:
    """How ``value`` of the primary metric compares with the results spec."""
    if value is None:
        return "not logged"
    sign = 1 if spec.get("direction") == "maximize" else -1
    goal, floor = spec.get("goal_value"), spec.get("min_value")
    if goal is not None and sign * (value - goal) >= 0:
        return f"goal met (>= {goal})" if sign > 0 else f"goal met (<= {goal})"
    if floor is not None and sign * (value - floor) < 0:
        return f"below the minimum {floor}"
    return f"acceptable, short of the goal {goal}" if goal is not None else "acceptable"


def results_from(suggestion: dict[str, Any]) -> dict[str, Any]:
    """``finalize_run`` results from a ``list_unfinalized_runs`` suggestion (its value and outcome).

    The suggested outcome follows the results spec: success at the goal, partial at the minimum,
    else miss; a run that logged no value is recorded as unknown.
    """
    value = suggestion["value"]
    return {
        "primary_metric": suggestion["primary_metric"],
        "direction": suggestion["direction"],
        "value": value,
        "dataset_split": suggestion["dataset_split"] or "unspecified",
        "ml_outcome": suggestion["ml_outcome"] or "unknown",
        "notes": f"last logged value of stage run {suggestion['from_stage_run'] or '(none)'}",
    }


def finalization_line(record: dict[str, Any]) -> str:
    """One line: what finalize_run recorded."""
    value = record["value"]
    shown = f"{value:.3f}" if value is not None else "-"
    return (
        f"finalize_run: {record['primary_metric']} = {shown} -> {record['ml_outcome']} "
        f"(record {record['record_id']}, {record['pipeline_run_id']})"
    )


def context_lines(context: dict[str, Any]) -> str:
    """The best result and the recent trend from ``get_experiment_context``."""
    best = context.get("best")
    if best is None:
        return "  no finalized result yet"
    trend = " -> ".join(
        f"{p['value']:.3f}" if p["value"] is not None else "-" for p in context["recent_trend"]
    )
    lines = [
        f"  best {context['metric']} ({context['direction']}): {best['value']:.3f} on {best['version']} "
        f"({best['pipeline_run_id']}, {best['ml_outcome']})",
        f"  recent trend: {trend} ({context['trend_direction'] or 'too few points'})",
    ]
    lines += [
        f"  regression: {r['value']:.3f} ({r['pipeline_run_id']}, {r['version']}) is {r['gap']:.3f} worse "
        f"than the best before it ({r['best_before']:.3f})"
        for r in context["regressions"]
    ]
    lines.append(f"  pending finalizations: {context['pending_total']}")
    return "\n".join(lines)


def lineage_lines(edges_by_stage: dict[str, list[dict[str, Any]]], runs: dict[str, str]) -> list[str]:
    """One line per stage: where each of its inputs came from (a stage run or a registered source)."""
    lines = []
    for stage, edges in edges_by_stage.items():
        groups: dict[str, list[str]] = {}
        for edge in edges:
            if edge.get("source"):
                origin = f"source '{edge['source']}' ({(edge.get('content_hash') or '')[:18]})"
            else:
                origin = f"{edge.get('stage')} {edge.get('run_id')}"
            groups.setdefault(origin, []).append(edge["signal"])
        parts = [f"{', '.join(signals)} <- {origin}" for origin, signals in groups.items()]
        lines.append(f"  {stage} {runs[stage]}: " + ("; ".join(parts) or "no inputs"))
    return lines


def report_lines(report: dict[str, Any], where: Path) -> list[str]:
    """The evaluate stage's JSON report, briefly."""
    names = report.get("classes") or []
    lines = [
        f"  {where}",
        f"  accuracy {report['accuracy']:.4f} on {report['rows']} {report['split']} rows, "
        f"loss {report['loss']:.4f}",
        "  confusion matrix (rows: true class, columns: predicted):",
    ]
    for name, row in zip(names, report["confusion_matrix"], strict=False):
        lines.append(f"    {name:<8} " + " ".join(f"{count:>4}" for count in row))
    return lines


def comparison(outcomes: Sequence[RunOutcome], spec: dict[str, Any]) -> str:
    """One row per pipeline run: version, lr, primary metric, verdict, cache hits."""
    rows = []
    for outcome in outcomes:
        value = outcome.primary(spec)
        hits = sum(1 for s in outcome.stages if s["cache_hit"])
        rows.append(
            [
                outcome.label,
                outcome.run["pipeline_run_id"],
                outcome.run["version"],
                outcome.lr,
                f"{value:.3f}" if value is not None else "-",
                verdict(value, spec),
                f"{hits}/{len(outcome.stages)}",
            ]
        )
    headers = ["run", "pipeline run", "version", "lr", spec["primary_metric"], "results spec", "cache hits"]
    return table(headers, rows)


def next_steps(root: Path, outcome: RunOutcome) -> str:
    """Where to look after the demo."""
    train = outcome.stage("train")["stage_run_id"] if outcome.stages else "<stage run id>"
    query = "select stage, state, cache_hit, cached_from from stage_runs order by created_at"
    rows = [
        ("summary for agents", f"{root / 'STATE.md'}"),
        ("status", f"goldfish status --project {root}"),
        ("a stage's log", f"goldfish logs {train} --project {root}"),
        ("every record", f'sqlite3 {root / ".goldfish" / "goldfish.db"} "{query}"'),
        ("stored outputs", f"{root / '.goldfish' / 'storage' / 'runs' / train}/{{outputs,logs}}/"),
        ("the workspace", f"{root / 'workspaces' / 'w1'}/  (edit, then run again)"),
        ("with an agent", f"goldfish serve --project {root}  (see README.md)"),
    ]
    width = max(len(what) for what, _ in rows)
    return "\n".join(f"  {what.ljust(width)}  {where}" for what, where in rows)
