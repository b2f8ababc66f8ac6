"""The ``checks`` a stage may declare on an output: which exist per output type, and whether one is usable.

Part of the pipeline language (``pipeline.yaml`` is validated against it); judging the rules
against an output's statistics is ``svs/rules.py``'s job.
"""

from __future__ import annotations

from goldfish.pipelines.models import CheckRule

RULES: dict[str, frozenset[str]] = {
    "npy": frozenset({"count", "nan_ratio", "mean", "std", "min", "max", "unique_ratio", "entropy"}),
    "csv": frozenset({"row_count", "null_ratio", "unique_count", "entropy", "mean", "std", "min", "max"}),
    "directory": frozenset({"files", "bytes"}),
    "file": frozenset({"files", "bytes"}),
}
TABLE_RULES = frozenset({"row_count"})  # csv rules about the whole table, not a column


def rule_problems(output_type: str, name: str, rule: CheckRule) -> list[str]:
    """What is wrong with one declared rule (empty when it is usable)."""
    allowed = RULES.get(output_type, frozenset())
    if name not in allowed:
        return [f"unknown check '{name}' for a {output_type} output (known: {', '.join(sorted(allowed))})"]
    problems = []
    if rule.min is None and rule.max is None and rule.between is None:
        problems.append(f"check '{name}' needs min, max or between")
    if rule.between is not None and rule.between[0] > rule.between[1]:
        problems.append(f"check '{name}': between [{rule.between[0]}, {rule.between[1]}] is empty")
    if rule.columns is not None and (output_type != "csv" or name in TABLE_RULES):
        problems.append(f"check '{name}': columns apply only to per-column csv checks")
    return problems
