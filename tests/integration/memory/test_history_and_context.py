"""Experiment memory through real MCP sessions: experiment context, history and tags."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.memory.memory_support import (
    SPEC,
    WORKSPACE,
    finalize,
    history,
    pending,
    record_of,
    run_scored,
    scored_workspace,
    values,
)
from tests.integration.pipeline_fixtures import fail, ok, start_run, wait_for_pipeline

# -- context, history and tags ---------------------------------------------------------------


@pytest.mark.anyio
async def test_get_experiment_context_after_five_finalized_runs_gives_best_trend_regressions_and_pending(
    gated: Client,
) -> None:
    slot = await scored_workspace(gated)
    records = []
    for score in (0.6, 0.8, 0.7, 0.9, 0.85):
        submission = await run_scored(gated, slot, score)
        (waiting,) = await pending(gated, workspace=WORKSPACE)
        suggestion = waiting["suggestion"]
        assert suggestion["value"] == score
        await finalize(gated, submission["record_id"], suggestion["value"], suggestion["ml_outcome"])
        records.append(submission["record_id"])
    await ok(gated, "log_thought", thought="the 0.9 config looks like the one to beat", workspace=WORKSPACE)
    sixth = await run_scored(gated, slot, 0.895)

    context = (await ok(gated, "get_experiment_context", workspace="w1"))["context"]

    assert (context["workspace"], context["goal"]) == (WORKSPACE, "learn something")
    assert (context["metric"], context["direction"]) == ("score", "maximize")
    assert (context["best"]["record_id"], context["best"]["value"]) == (records[3], 0.9)
    assert values(context["recent_trend"]) == [0.6, 0.8, 0.7, 0.9, 0.85]
    assert [p["record_id"] for p in context["recent_trend"]] == records
    assert context["trend_direction"] == "improving"
    regressions = [(r["record_id"], r["value"], r["best_before"]) for r in context["regressions"]]
    assert regressions == [(records[2], 0.7, 0.8), (records[4], 0.85, 0.9)]
    assert [p["pipeline_run_id"] for p in context["pending_finalizations"]] == [sixth["pipeline_run_id"]]
    assert context["pending_finalizations"][0]["suggestion"]["value"] == 0.895
    assert context["pending_total"] == 1
    assert [t["thought"] for t in context["last_thoughts"]] == ["the 0.9 config looks like the one to beat"]

    # Within the spec's tolerance (0.01) of the best is no regression; the trend keeps the last five.
    await finalize(gated, sixth["record_id"], 0.895, "success")
    context = (await ok(gated, "get_experiment_context", workspace=WORKSPACE))["context"]
    assert values(context["recent_trend"]) == [0.8, 0.7, 0.9, 0.85, 0.895]
    assert [r["value"] for r in context["regressions"]] == [0.7, 0.85]
    assert (context["pending_finalizations"], context["pending_total"]) == ([], 0)

    # inspect_record compares with the best result.
    worse = (await record_of(gated, records[4]))["comparison"]
    assert (worse["baseline_record_id"], worse["baseline_from"], worse["is_baseline"]) == (
        records[3],
        "best",
        False,
    )
    assert worse["delta"] == pytest.approx(-0.05)
    assert worse["better_than_baseline"] is False
    best = await record_of(gated, records[3], include=["comparison"])
    assert (best["comparison"]["is_baseline"], best["comparison"]["delta"], best["results"]) == (
        True,
        0.0,
        None,
    )


@pytest.mark.anyio
async def test_get_experiment_context_before_any_finalization_has_no_best_and_lists_pending(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.6)

    context = (await ok(session, "get_experiment_context", workspace=WORKSPACE))["context"]

    assert (context["best"], context["recent_trend"], context["regressions"]) == (None, [], [])
    assert context["trend_direction"] is None
    assert [p["record_id"] for p in context["pending_finalizations"]] == [submission["record_id"]]
    await fail(session, "get_experiment_context", "WORKSPACE_NOT_FOUND", workspace="nowhere")


async def history_scenario(client: Client) -> dict[str, str]:
    """Runs a (0.6, group sweep), b (0.9, sweep, tagged best), c (0.75), d (prep only, unfinalized).

    a, b and c each save a version (v1, v2, v3); d runs on v3. Returns pipeline run ids by name.
    """
    slot = await scored_workspace(client)
    a = await run_scored(client, slot, 0.6, experiment_group="sweep")
    b = await run_scored(client, slot, 0.9, experiment_group="sweep")
    c = await run_scored(client, slot, 0.75)
    d = await start_run(client, results_spec=SPEC, stages=["prep"])
    await wait_for_pipeline(client, d["pipeline_run_id"])
    for run, value, outcome in ((a, 0.6, "miss"), (b, 0.9, "success"), (c, 0.75, "partial")):
        await finalize(client, run["pipeline_run_id"], value, outcome)
    await ok(
        client, "tag_record", ref=b["pipeline_run_id"], tag="best", workspace=WORKSPACE, reason=LONG_REASON
    )
    return {name: run["pipeline_run_id"] for name, run in zip("abcd", (a, b, c, d), strict=True)}


def pruns(listed: dict[str, Any], ids: dict[str, str]) -> list[str]:
    """The names (a-d, or vN for version records) of the listed records, in order."""
    names = {prun: name for name, prun in ids.items()}
    return [names[r["pipeline_run_id"]] if r["pipeline_run_id"] else r["version"] for r in listed["records"]]


@pytest.mark.anyio
async def test_list_history_filters_by_type_stage_tag_metric_value_group_and_finalization(
    session: Client,
) -> None:
    ids = await history_scenario(session)

    async def names(**arguments: Any) -> list[str]:
        listed = await history(session, **arguments)
        assert listed["total"] == len(listed["records"])
        return sorted(pruns(listed, ids))

    assert await names() == ["a", "b", "c", "d", "v1", "v2", "v3"]
    assert await names(record_type="run") == ["a", "b", "c", "d"]
    assert await names(record_type="version") == ["v1", "v2", "v3"]
    assert await names(stage="train") == ["a", "b", "c"]
    assert await names(stage="prep") == ["a", "b", "c", "d"]
    assert await names(tagged=True) == ["b"]
    assert await names(tagged=False) == ["a", "c", "d", "v1", "v2", "v3"]
    assert await names(metric="score") == ["a", "b", "c"]
    assert await names(metric="loss") == []
    assert await names(metric="score", min_value=0.7) == ["b", "c"]
    assert await names(experiment_group="sweep") == ["a", "b"]
    assert await names(finalized_only=True) == ["a", "b", "c"]
    tagged = (await history(session, tagged=True))["records"][0]
    assert (tagged["tags"], tagged["ml_outcome"], tagged["value"]) == (["best"], "success", 0.9)
    await fail(session, "list_history", "WORKSPACE_NOT_FOUND", workspace="nowhere")
    await fail(session, "list_history", "INVALID_ARGUMENT", workspace=WORKSPACE, record_type="experiment")


@pytest.mark.anyio
async def test_list_history_sorts_by_metric_or_time_pages_with_total_and_hides_pruned_versions(
    session: Client,
) -> None:
    ids = await history_scenario(session)

    by_metric = await history(session, record_type="run", sort_by="metric")
    assert pruns(by_metric, ids) == ["b", "c", "a", "d"]
    ascending = await history(session, record_type="run", sort_by="metric", desc=False)
    assert pruns(ascending, ids) == ["a", "c", "b", "d"]
    newest = await history(session, record_type="run")
    assert pruns(newest, ids) == ["d", "c", "b", "a"]
    assert pruns(await history(session, record_type="run", desc=False), ids) == ["a", "b", "c", "d"]
    paged = await history(session, record_type="run", sort_by="metric", limit=2, offset=1)
    assert (pruns(paged, ids), paged["total"], paged["limit"], paged["offset"]) == (["c", "a"], 4, 2, 1)
    await fail(session, "list_history", "INVALID_ARGUMENT", workspace=WORKSPACE, limit=0)

    await ok(
        session, "manage_versions", workspace=WORKSPACE, action="prune", version="v1", reason=LONG_REASON
    )

    assert sorted(pruns(await history(session), ids)) == ["b", "c", "d", "v2", "v3"]
    everything = await history(session, include_pruned=True)
    assert (everything["total"], sorted(pruns(everything, ids))) == (
        7,
        ["a", "b", "c", "d", "v1", "v2", "v3"],
    )


@pytest.mark.anyio
async def test_tag_record_tags_the_run_and_its_version_and_a_taken_tag_is_tag_exists(session: Client) -> None:
    slot = await scored_workspace(session)
    first = await run_scored(session, slot, 0.6)
    second = await run_scored(session, slot, 0.9)

    tagged = (await ok(session, "tag_record", ref=second["pipeline_run_id"], tag="best", workspace="w1"))[
        "tag"
    ]

    assert (tagged["tag"], tagged["version"], tagged["version_tagged"]) == ("best", "v2", True)
    assert tagged["record"]["tags"] == ["best"]
    listed = await ok(session, "manage_versions", workspace=WORKSPACE, action="list")
    assert {v["version"]: v["tags"] for v in listed["versions"]["versions"]} == {"v1": [], "v2": ["best"]}
    diff = await ok(session, "diff", target=f"{WORKSPACE}@best", against=f"{WORKSPACE}@v1")
    assert diff["diff"]["files"]
    error = await fail(session, "tag_record", "TAG_EXISTS", ref=first["record_id"], tag="best")
    assert error["details"]["record_id"] == second["record_id"]
    assert (await record_of(session, "@best", workspace=WORKSPACE))["record"]["record_id"] == second[
        "record_id"
    ]
    await fail(session, "tag_record", "TAG_EXISTS", ref=second["record_id"], tag="best")
    await fail(session, "tag_record", "INVALID_ARGUMENT", ref=first["record_id"], tag="v3")
    await fail(session, "tag_record", "INVALID_ARGUMENT", ref=first["record_id"], tag="no spaces")
    await fail(session, "tag_record", "REASON_REQUIRED", ref=first["record_id"], tag="old", reason="short")

    # A tag set on a version with manage_versions: taken for records of other versions too,
    # and @tag finds that version's record.
    await ok(
        session,
        "manage_versions",
        workspace=WORKSPACE,
        action="tag",
        version="v1",
        tag="start",
        reason=LONG_REASON,
    )
    await fail(session, "tag_record", "TAG_EXISTS", ref=second["record_id"], tag="start")
    found = (await record_of(session, "@start", workspace=WORKSPACE))["record"]
    assert (found["record_type"], found["version"]) == ("version", "v1")
    again = (await ok(session, "tag_record", ref=first["record_id"], tag="start"))["tag"]
    assert (again["version"], again["version_tagged"]) == ("v1", False)
