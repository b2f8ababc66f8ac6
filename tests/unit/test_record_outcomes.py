"""The ML outcome finalize_run suggests: a value judged against the results spec's thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from goldfish.memory.record_models import suggested_outcome

ACCURACY: dict[str, Any] = {
    "primary_metric": "acc",
    "direction": "maximize",
    "min_value": 0.8,
    "goal_value": 0.95,
}
LOSS: dict[str, Any] = {
    "primary_metric": "loss",
    "direction": "minimize",
    "min_value": 0.5,
    "goal_value": 0.1,
}


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (0.96, ACCURACY, "success"),
        (0.95, ACCURACY, "success"),
        (0.9, ACCURACY, "partial"),
        (0.8, ACCURACY, "partial"),
        (0.7, ACCURACY, "miss"),
        (0.05, LOSS, "success"),
        (0.3, LOSS, "partial"),
        (0.6, LOSS, "miss"),
        (0.9, {"direction": "maximize", "min_value": 0.8}, "success"),
        (0.7, {"direction": "maximize", "min_value": 0.8}, "miss"),
        (0.9, {"direction": "maximize", "goal_value": 0.95}, "miss"),
    ],
)
def test_suggested_outcome_with_thresholds_is_success_at_goal_partial_at_minimum_else_miss(
    value: float, spec: dict[str, Any], expected: str
) -> None:
    assert suggested_outcome(value, spec) == expected


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        (None, ACCURACY),
        (0.9, {"primary_metric": "acc", "direction": "maximize"}),
        (0.9, {"primary_metric": "acc", "min_value": 0.8}),
    ],
)
def test_suggested_outcome_without_a_value_thresholds_or_direction_is_none(
    value: float | None, spec: dict[str, Any]
) -> None:
    assert suggested_outcome(value, spec) is None
