"""Pure pieces of the dashboard: which config columns the runs table shows, where DAG boxes go."""

from __future__ import annotations

from goldfish.web.dag import depths, render
from goldfish.web.data import differing_columns
from goldfish.web.html import e
from goldfish.web.models import StageNode


def _node(stage: str, *deps: str, status: str = "pending") -> StageNode:
    return StageNode(
        stage_run_id=f"stage-{stage}",
        stage=stage,
        status=status,
        elapsed_seconds=None,
        attempt=0,
        cache_hit=False,
        failure_kind=None,
        error=None,
        depends_on=list(deps),
    )


def test_runs_table_shows_only_config_keys_whose_values_differ() -> None:
    configs = [
        {"train.lr": "0.1", "train.epochs": "10"},
        {"train.lr": "0.01", "train.epochs": "10"},
        {"train.lr": "0.1"},
    ]
    assert differing_columns(configs) == ["train.epochs", "train.lr"]  # a missing key differs too
    assert differing_columns([{"a": "1"}, {"a": "1"}]) == []


def test_dag_columns_follow_the_longest_chain_of_producers() -> None:
    nodes = [
        _node("prep"),
        _node("features", "prep"),
        _node("train", "prep", "features"),
        _node("report", "train"),
    ]
    assert depths(nodes) == {"prep": 0, "features": 1, "train": 2, "report": 3}


def test_dag_survives_a_cycle_and_a_producer_outside_the_run() -> None:
    nodes = [_node("a", "b"), _node("b", "a"), _node("c", "elsewhere")]
    assert set(depths(nodes)) == {"a", "b", "c"}
    assert 'data-stage="c"' in render(nodes, "/runs/prun-x", None)


def test_stage_names_and_states_are_escaped_in_the_svg() -> None:
    svg = render([_node("x", status="<script>")], "/runs/prun-x", None)
    assert "<script>" not in svg and e("<script>") in svg
