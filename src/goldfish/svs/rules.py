"""``checks`` rules over output statistics: judging them (which rules exist: ``pipelines/checks.py``).

A rule's name is the statistic it reads (``row_count`` reads ``rows``). Each finding names the
output, the rule, the column if any, the bound and the observed value; its mode is the rule's
own or ``svs.default_mode``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from goldfish.pipelines.checks import TABLE_RULES
from goldfish.pipelines.models import CheckRule, StageDef

Mode = Literal["warn", "block"]

STAT_OF_RULE = {"row_count": "rows"}


@dataclass(frozen=True)
class Finding:
    """One rule an output broke (or could not be judged by)."""

    signal: str
    rule: str
    column: str | None
    mode: Mode
    bound: dict[str, Any]
    observed: float | None
    message: str

    def as_json(self) -> dict[str, Any]:
        """The finding as agents read it."""
        return asdict(self)


def _bound(rule: CheckRule) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    if rule.min is not None:
        bound["min"] = rule.min
    if rule.max is not None:
        bound["max"] = rule.max
    if rule.between is not None:
        bound["between"] = list(rule.between)
    return bound


def _breaks(rule: CheckRule, value: float) -> bool:
    low = max(x for x in (rule.min, rule.between[0] if rule.between else None, -math.inf) if x is not None)
    high = min(x for x in (rule.max, rule.between[1] if rule.between else None, math.inf) if x is not None)
    return not (low <= value <= high)


def _describe(signal: str, rule: str, column: str | None, bound: dict[str, Any], observed: Any) -> str:
    where = f"{signal}.{column}" if column else signal
    wanted = ", ".join(f"{k} {v}" for k, v in bound.items())
    seen = "no value (no finite data)" if observed is None else f"{observed:.6g}"
    return f"{where}: {rule} is {seen}; wanted {wanted}"


def _targets(
    name: str, output_type: str, stats: dict[str, Any], rule: CheckRule
) -> list[tuple[str | None, Any]]:
    """(column, observed) pairs a rule reads; a named column that is absent reads as missing."""
    stat = STAT_OF_RULE.get(name, name)
    if output_type != "csv" or name in TABLE_RULES:
        return [(None, stats.get(stat))]
    columns: dict[str, dict[str, Any]] = stats.get("columns") or {}
    if rule.columns is not None:
        return [(col, columns[col].get(stat) if col in columns else KeyError(col)) for col in rule.columns]
    # Every column the statistic exists for (mean/std/min/max only exist for numeric columns).
    return [(col, values[stat]) for col, values in columns.items() if stat in values]


def judge_output(
    signal: str,
    output_type: str,
    checks: dict[str, CheckRule],
    stats: dict[str, Any] | None,
    default_mode: Mode,
) -> list[Finding]:
    """Findings of one output's rules against its statistics.

    Without statistics (turned off, or the stage environment could not compute them) each rule
    yields one warning saying so: nothing is judged, and nothing pretends it passed.
    """
    findings: list[Finding] = []
    why = "statistics were not computed" if stats is None else stats.get("error")
    for name, rule in checks.items():
        mode: Mode = rule.mode or default_mode
        bound = _bound(rule)
        if why:
            message = f"{signal}: {name} could not be checked ({why})"
            findings.append(Finding(signal, name, None, "warn", bound, None, message))
            continue
        assert stats is not None
        for column, observed in _targets(name, output_type, stats, rule):
            if isinstance(observed, KeyError):
                message = f"{signal}: column '{column}' of check {name} is not in the output"
                findings.append(Finding(signal, name, column, mode, bound, None, message))
            elif observed is None or _breaks(rule, float(observed)):
                value = None if observed is None else float(observed)
                findings.append(
                    Finding(
                        signal,
                        name,
                        column,
                        mode,
                        bound,
                        value,
                        _describe(signal, name, column, bound, value),
                    )
                )
    return findings


def judge_stage(
    stage: StageDef, stats: dict[str, dict[str, Any]] | None, default_mode: Mode
) -> list[Finding]:
    """Findings of every output of ``stage`` that declares ``checks``."""
    findings: list[Finding] = []
    for signal, declared in stage.outputs.items():
        if declared.checks:
            output = None if stats is None else stats.get(signal)
            findings += judge_output(signal, declared.type, declared.checks, output, default_mode)
    return findings
