"""Results made from a run's spec and a value (``goldfish finalize --value``, ``run --finalize auto``)."""

from __future__ import annotations

import pytest

from goldfish.errors import InvalidArgumentError
from goldfish.memory.auto_results import results_from

SPEC = {"primary_metric": "val_acc", "direction": "maximize", "min_value": 0.8, "goal_value": 0.9}


def test_results_from_a_value_take_the_outcome_the_spec_gives_it_and_an_unspecified_split() -> None:
    results = results_from(SPEC, 0.85, None, "by hand")

    assert results == {
        "primary_metric": "val_acc",
        "direction": "maximize",
        "value": 0.85,
        "dataset_split": "unspecified",
        "ml_outcome": "partial",
        "notes": "by hand",
    }


def test_results_from_a_value_keep_an_outcome_given_explicitly() -> None:
    assert results_from(SPEC, 0.95, "miss")["ml_outcome"] == "miss"


def test_results_without_a_value_are_unknown_unless_another_outcome_is_asked_for() -> None:
    assert results_from(SPEC, None, None)["ml_outcome"] == "unknown"
    with pytest.raises(InvalidArgumentError, match="only --outcome unknown"):
        results_from(SPEC, None, "success")
