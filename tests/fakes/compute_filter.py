"""List filters of the fake Compute server: ``FIELD = VALUE`` terms as ``instances.list`` takes them."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.compute_rules import ApiError

_TERM_RE = re.compile(
    r"""\s*\(?\s*(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|\beq\b|\bne\b)\s*"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s()]+)\s*\)?\s*(?:\bAND\b)?""",
    re.IGNORECASE,
)


def parse_filter(expr: str) -> list[tuple[str, str, str]]:
    """``labels.a = "x" AND (name != y)`` -> ``[(field, op, value), ...]`` (terms are ANDed)."""
    terms: list[tuple[str, str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        match = _TERM_RE.match(expr, pos)
        if match is None or match.end() == pos:
            raise ApiError(400, "invalid", f"Invalid list filter expression: {expr!r}.")
        value = match.group("value")
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1]) if value[0] == '"' else value[1:-1]
        terms.append((match.group("field"), match.group("op").lower(), value))
        pos = match.end()
    return terms


def _filter_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_value(resource: dict[str, Any], path: str) -> str | None:
    current: Any = resource
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return _filter_text(current)


def _term_matches(resource: dict[str, Any], term: tuple[str, str, str]) -> bool:
    path, op, wanted = term
    actual = _field_value(resource, path)
    if op in ("eq", "ne"):
        hit = actual is not None and re.fullmatch(wanted, actual) is not None
        return hit if op == "eq" else not hit
    hit = actual == wanted
    return hit if op == "=" else not hit


def matches_filter(resource: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    """Whether an instance resource satisfies every term."""
    return all(_term_matches(resource, term) for term in terms)
