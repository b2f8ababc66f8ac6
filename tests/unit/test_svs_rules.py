"""``checks`` rules judged against output statistics: bounds, columns, modes, missing statistics."""

from __future__ import annotations

from goldfish.pipelines.checks import rule_problems
from goldfish.pipelines.models import CheckRule
from goldfish.svs.rules import judge_output

CSV_STATS = {
    "type": "csv",
    "rows": 50,
    "columns": {
        "label": {"null_ratio": 0.0, "unique_count": 1, "entropy": 0.0},
        "x": {"null_ratio": 0.2, "unique_count": 40, "entropy": 5.1, "mean": 3.0, "std": 0.0},
    },
}


def test_csv_rules_name_column_bound_and_value_and_take_the_default_mode() -> None:
    checks = {
        "entropy": CheckRule(min=0.5, columns=["label"]),
        "null_ratio": CheckRule(max=0.1, mode="warn"),
        "row_count": CheckRule(min=100),
        "mean": CheckRule(between=(0.0, 10.0)),
    }
    findings = judge_output("labels", "csv", checks, CSV_STATS, "block")
    assert [(f.rule, f.column, f.mode, f.observed) for f in findings] == [
        ("entropy", "label", "block", 0.0),
        ("null_ratio", "x", "warn", 0.2),
        ("row_count", None, "block", 50.0),
    ]
    assert findings[0].message == "labels.label: entropy is 0; wanted min 0.5"
    assert findings[2].bound == {"min": 100.0}


def test_a_named_column_the_output_lacks_is_a_finding() -> None:
    [finding] = judge_output(
        "labels", "csv", {"null_ratio": CheckRule(max=0, columns=["y"])}, CSV_STATS, "warn"
    )
    assert finding.column == "y" and "not in the output" in finding.message and finding.observed is None


def test_without_statistics_each_rule_warns_that_it_could_not_be_checked() -> None:
    checks = {"nan_ratio": CheckRule(max=0, mode="block")}
    [missing] = judge_output("f", "npy", checks, None, "block")
    [broken] = judge_output("f", "npy", checks, {"type": "npy", "error": "numpy is not installed"}, "block")
    assert missing.mode == broken.mode == "warn"
    assert "could not be checked (numpy is not installed)" in broken.message


def test_npy_rule_on_an_array_without_finite_values_is_broken() -> None:
    stats = {"type": "npy", "count": 4, "nan_ratio": 1.0, "mean": None, "std": None}
    [finding] = judge_output("f", "npy", {"std": CheckRule(min=1e-6)}, stats, "block")
    assert finding.observed is None and "no value" in finding.message


def test_declared_rules_are_checked_for_name_bounds_and_columns() -> None:
    assert rule_problems("npy", "nan_ration", CheckRule(max=0))[0].startswith("unknown check 'nan_ration'")
    assert rule_problems("npy", "std", CheckRule()) == ["check 'std' needs min, max or between"]
    assert "is empty" in rule_problems("csv", "mean", CheckRule(between=(2.0, 1.0)))[0]
    assert "columns apply only" in rule_problems("npy", "mean", CheckRule(min=0, columns=["a"]))[0]
    assert rule_problems("directory", "files", CheckRule(min=1)) == []
