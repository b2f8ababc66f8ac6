"""The pure parts of compare_runs: config diffs, input differences and results deltas."""

from __future__ import annotations

from goldfish.db.runs import LineageRow
from goldfish.memory.compare import (
    MAX_VALUE_CHARS,
    config_changes,
    input_differences,
    results_delta,
)
from goldfish.memory.compare_models import ResultsSide


def lineage(
    signal: str, content_hash: str | None, producer: str | None, source: str | None = None
) -> LineageRow:
    return LineageRow(
        "stage-aaaaaaaaaaaa", "input", signal, "npy", f"file:///{signal}", content_hash, 1, producer, source
    )


def test_config_changes_when_nested_keys_differ_reports_dotted_paths_sorted() -> None:
    a = {"lr": 0.1, "model": {"depth": 4, "act": "relu"}, "seed": 1}
    b = {"lr": 0.01, "model": {"depth": 4, "width": 64}, "epochs": 3}

    changes = [(c.path, c.change, c.a, c.b) for c in config_changes(a, b)]

    assert changes == [
        ("epochs", "added", None, 3),
        ("lr", "changed", 0.1, 0.01),
        ("model.act", "removed", "relu", None),
        ("model.width", "added", None, 64),
        ("seed", "removed", 1, None),
    ]


def test_config_changes_when_only_the_type_differs_counts_it_as_changed() -> None:
    changes = config_changes({"flag": 1, "same": [1, 2]}, {"flag": True, "same": [1, 2]})

    assert [(c.path, c.a, c.b) for c in changes] == [("flag", 1, True)]


def test_config_changes_when_a_mapping_becomes_a_scalar_reports_the_whole_key() -> None:
    changes = config_changes({"opt": {"name": "sgd"}}, {"opt": "adam"})

    assert [(c.path, c.change, c.a, c.b) for c in changes] == [("opt", "changed", {"name": "sgd"}, "adam")]


def test_config_changes_when_a_value_is_huge_shows_it_shortened() -> None:
    [change] = config_changes({}, {"blob": "x" * 10_000})

    assert isinstance(change.b, str)
    assert len(change.b) < MAX_VALUE_CHARS + 40 and change.b.endswith("characters)")


def test_input_differences_when_content_producer_or_presence_differ_flags_each() -> None:
    a = [lineage("features", "h1", "stage-000000000001"), lineage("labels", "h2", None, "raw")]
    b = [lineage("features", "h1", "stage-000000000002"), lineage("extra", "h3", None, "other")]

    found = {item.signal: item for item in input_differences(a, b)}

    assert list(found) == ["features", "labels", "extra"]
    features = found["features"]
    assert (features.content_differs, features.producer_differs, features.same) == (False, True, False)
    assert (found["labels"].in_a, found["labels"].in_b) == (True, False)
    assert found["labels"].source_differs is True and found["extra"].in_a is False


def test_input_differences_when_identical_marks_same() -> None:
    rows = [lineage("features", "h1", "stage-000000000001")]

    [item] = input_differences(rows, rows)

    assert item.same is True and not (item.content_differs or item.producer_differs or item.source_differs)


def side(value: float, outcome: str, metric: str = "loss", direction: str = "minimize") -> ResultsSide:
    return ResultsSide(
        record_id="R",
        finalized=True,
        primary_metric=metric,
        direction=direction,
        value=value,
        ml_outcome=outcome,
        dataset_split="val",
        secondary={"acc": value * 2},
    )


def test_results_delta_when_both_finalized_on_one_metric_says_which_is_better() -> None:
    delta = results_delta(side(0.5, "miss"), side(0.25, "success"))

    assert delta.same_metric is True
    assert delta.delta == -0.25 and delta.b_better is True and delta.outcome_changed is True
    assert delta.secondary_deltas == {"acc": -0.5}
    maximize = results_delta(
        side(0.5, "miss", direction="maximize"), side(0.25, "miss", direction="maximize")
    )
    assert maximize.b_better is False and maximize.outcome_changed is False


def test_results_delta_when_metrics_differ_or_one_is_unfinalized_compares_nothing() -> None:
    other_metric = results_delta(side(0.5, "miss"), side(0.9, "success", metric="accuracy"))
    unfinalized = results_delta(side(0.5, "miss"), ResultsSide(record_id=None, finalized=False))

    assert (other_metric.same_metric, other_metric.delta, other_metric.b_better) == (False, None, None)
    assert (unfinalized.delta, unfinalized.outcome_changed) == (None, False)
