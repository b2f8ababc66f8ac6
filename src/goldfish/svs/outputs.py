"""The server's side of output statistics: read what the stage environment wrote, judge the rules.

The statistics themselves are computed by ``goldfish.io.stats`` inside the stage's environment;
the server only reads the small JSON it left beside the logs (mirrored from the bucket on GCE).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from goldfish.config import Svs
from goldfish.db.runs import LineageRow
from goldfish.io.stats import STATS_FILE
from goldfish.pipelines.models import StageDef
from goldfish.svs.rules import Finding, Mode, judge_stage

MAX_STATS_BYTES = 4 * 1024 * 1024  # a CSV with thousands of columns stays well below this


def signals_settings(svs: Svs) -> dict[str, Any]:
    """The ``svs`` block of a stage's signals file: what the in-stage statistics step reads."""
    return {"output_stats": svs.enabled and svs.output_stats, "sample_size": svs.sample_size}


def read_stats(logs_dir: Path) -> dict[str, dict[str, Any]] | None:
    """Per-output statistics the stage environment wrote, or None when there are none (or unreadable)."""
    path = logs_dir / STATS_FILE
    try:
        if path.stat().st_size > MAX_STATS_BYTES:
            return None
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    outputs = report.get("outputs") if isinstance(report, dict) else None
    return outputs if isinstance(outputs, dict) else None


def judge(
    stage: StageDef, rows: list[LineageRow], stats: dict[str, dict[str, Any]] | None, svs: Svs
) -> tuple[list[LineageRow], list[Finding]]:
    """Output lineage rows carrying their statistics, and the ``checks`` findings."""
    with_stats = [replace(row, stats=(stats or {}).get(row.signal)) for row in rows]
    if not svs.enabled:
        return with_stats, []
    return with_stats, judge_stage(stage, stats, svs.default_mode)


def contract_findings(violations: list[str], blocks: bool) -> list[Finding]:
    """Output contract problems (``"<signal>: <problem>"``) as findings of rule ``schema``.

    They share the findings' views (``get_svs_findings``, dashboard, STATE.md); whether they fail
    the stage stays the contract's own decision (``contract_violation``).
    """
    mode: Mode = "block" if blocks else "warn"
    found = []
    for text in violations:
        signal, _, problem = text.partition(": ")
        found.append(Finding(signal, "schema", None, mode, {}, None, f"{signal}: schema: {problem}"))
    return found


def blocking_message(findings: list[Finding]) -> str | None:
    """The failure message when any finding blocks (each names the rule, column, bound and value)."""
    blocking = [f for f in findings if f.mode == "block"]
    if not blocking:
        return None
    return "SVS check failed: " + "; ".join(f.message for f in blocking)
