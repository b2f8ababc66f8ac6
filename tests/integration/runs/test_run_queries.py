"""Reading runs back: lineage, metrics, logs with cursors, concurrent workspaces, list_runs paging,
run resources, the results-spec refusal and dry runs.

Stages are real processes started by the detached pipeline driver; waits are bounded polls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    by_stage,
    eventually,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    workspace_in_slot,
    write_pipeline,
)
from tests.integration.runs.runs_support import (
    HEX64,
    logs,
    manifest,
    run_to_end,
    running,
    terminal,
    version_names,
    when,
)

pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


@pytest.mark.anyio
async def test_get_lineage_with_depth_two_follows_producers_and_consumers_across_stages(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)
    stages = by_stage((await run_to_end(legacy_session))["stages"])
    prep, train, evaluate = (stages[n]["stage_run_id"] for n in ("prep", "train", "evaluate"))

    upstream = await ok(legacy_session, "get_lineage", run_id=evaluate, direction="upstream", depth=2)
    downstream = await ok(legacy_session, "get_lineage", run_id=prep, direction="downstream", depth=2)
    shallow = await ok(legacy_session, "get_lineage", run_id=prep, direction="downstream")

    assert [(e["depth"], e["run_id"], e["stage"], e["signal"]) for e in upstream["edges"]] == [
        (1, train, "train", "model"),
        (2, prep, "prep", "features"),
    ]
    assert [(e["depth"], e["run_id"], e["stage"], e["signal"]) for e in downstream["edges"]] == [
        (1, train, "train", "features"),
        (2, evaluate, "evaluate", "model"),
    ]
    assert [e["run_id"] for e in shallow["edges"]] == [train]
    assert all(HEX64.fullmatch(e["content_hash"]) for e in upstream["edges"] + downstream["edges"])


@pytest.mark.anyio
async def test_get_metrics_gives_summary_and_a_series_downsampled_to_max_points(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"metrics": 50}})
    train = by_stage((await run_to_end(legacy_session))["stages"])["train"]["stage_run_id"]

    summary = await ok(legacy_session, "get_metrics", run_id=train, summary_only=True)
    full = await ok(legacy_session, "get_metrics", run_id=train, names=["loss"])
    thin = await ok(legacy_session, "get_metrics", run_id=train, names=["loss"], max_points=10)
    none = await ok(legacy_session, "get_metrics", run_id=train, names=["accuracy"])

    # Telemetry (sys/*) is recorded beside the stage's own metrics.
    (loss,) = [m for m in summary["metrics"] if not m["name"].startswith("sys/")]
    assert (loss["name"], loss["count"], loss["last_step"]) == ("loss", 50, 49)
    assert loss["last"] == pytest.approx(1 / 50)
    assert (loss["min"], loss["max"]) == (pytest.approx(1 / 50), 1.0)
    assert loss["series"] == []
    series = full["metrics"][0]["series"]
    assert [step for step, _ in series] == list(range(50))
    thin_series = thin["metrics"][0]["series"]
    assert 2 <= len(thin_series) <= 10
    assert thin_series[0] == [0, 1.0]
    assert thin_series[-1][0] == 49
    steps = [step for step, _ in thin_series]
    assert steps == sorted(set(steps))
    assert none["metrics"] == []
    await fail(legacy_session, "get_metrics", "INVALID_ARGUMENT", run_id=train, max_points=1)


@pytest.mark.anyio
async def test_logs_follow_with_a_cursor_returns_only_new_lines_and_tail_and_stderr_work(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 1.5, "err_lines": 2, "lines": 3}})
    submission = await start_run(legacy_session)
    prep_id = by_stage(submission["stages"])["prep"]["stage_run_id"]
    await wait_for_stage(legacy_session, prep_id, running)

    async def lines_with_a_tick() -> dict[str, Any] | None:
        chunk = await logs(legacy_session, prep_id, tail=5000)
        assert chunk["complete"] is False, "the stage finished before its logs were followed"
        return chunk if any("tick" in line for line in chunk["lines"]) else None

    first = await eventually(lines_with_a_tick)
    await wait_for_stage(legacy_session, prep_id, terminal)

    rest = await logs(legacy_session, prep_id, cursor=first["cursor"])

    everything = await logs(legacy_session, prep_id, tail=5000)
    assert rest["complete"] is True
    assert first["lines"] + rest["lines"] == everything["lines"]
    assert rest["lines"]
    assert not set(first["lines"]) & set(rest["lines"])
    assert everything["lines"][0] == "prep started"
    assert everything["lines"][-1] == "prep done"
    nothing_new = await logs(legacy_session, prep_id, cursor=rest["cursor"])
    assert nothing_new["lines"] == []
    tail = await logs(legacy_session, prep_id, tail=2)
    assert tail["lines"] == everything["lines"][-2:]
    stderr = await logs(legacy_session, prep_id, stream="stderr")
    assert stderr["lines"] == ["prep warning 0", "prep warning 1"]
    both = await logs(legacy_session, prep_id, stream="both", tail=5000)
    assert "[stderr] prep warning 1" in both["lines"]
    assert "[stdout] prep done" in both["lines"]
    await fail(legacy_session, "logs", "INVALID_ARGUMENT", run_id=prep_id, cursor="not-a-cursor")
    await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])


# -- listing and concurrency -----------------------------------------------------------------


@pytest.mark.anyio
async def test_two_pipeline_runs_in_two_workspaces_at_once_both_complete(legacy_session: Client) -> None:
    first_slot = await workspace_in_slot(legacy_session, "alpha", "w1")
    second_slot = await workspace_in_slot(legacy_session, "beta", "w2")
    write_pipeline(first_slot, configs={"prep": {"sleep": 2.0}})
    write_pipeline(second_slot, configs={"prep": {"sleep": 2.0}})

    first = await start_run(legacy_session, workspace="w1")
    second = await start_run(legacy_session, workspace="w2")

    finals = [await wait_for_pipeline(legacy_session, s["pipeline_run_id"]) for s in (first, second)]

    assert [f["state"] for f in finals] == ["completed", "completed"]
    # Each first stage started before the other one finished: the two runs overlapped.
    one, other = (by_stage(f["stages"])["prep"] for f in finals)
    assert when(one["started_at"]) < when(other["finished_at"])
    assert when(other["started_at"]) < when(one["finished_at"])
    assert [f["workspace"] for f in finals] == ["alpha", "beta"]


@pytest.mark.anyio
async def test_list_runs_filters_by_workspace_stage_state_and_pipeline_run_and_pages_with_total(
    legacy_session: Client,
) -> None:
    first_slot = await workspace_in_slot(legacy_session, "alpha", "w1")
    second_slot = await workspace_in_slot(legacy_session, "beta", "w2")
    write_pipeline(first_slot, configs={"train": {"exit_code": 2}})
    write_pipeline(second_slot)
    failed = await run_to_end(legacy_session, workspace="w1")
    succeeded = await run_to_end(legacy_session, workspace="beta")

    everything = await ok(legacy_session, "list_runs", limit=200)
    in_alpha = await ok(legacy_session, "list_runs", workspace="alpha")
    by_slot = await ok(legacy_session, "list_runs", workspace="w2")
    trains = await ok(legacy_session, "list_runs", stage="train")
    failures = await ok(legacy_session, "list_runs", state="failed")
    skipped_in_beta = await ok(legacy_session, "list_runs", workspace="beta", state="skipped")
    of_run = await ok(legacy_session, "list_runs", pipeline_run_id=succeeded["pipeline_run_id"])
    page_one = await ok(legacy_session, "list_runs", limit=4, offset=0)
    page_two = await ok(legacy_session, "list_runs", limit=4, offset=4)

    assert everything["total"] == 6
    assert {r["workspace"] for r in in_alpha["runs"]} == {"alpha"}
    assert in_alpha["total"] == 3
    assert {r["workspace"] for r in by_slot["runs"]} == {"beta"}
    assert sorted(r["workspace"] for r in trains["runs"]) == ["alpha", "beta"]
    assert [(r["stage"], r["workspace"]) for r in failures["runs"]] == [("train", "alpha")]
    assert skipped_in_beta["total"] == 0
    assert skipped_in_beta["runs"] == []
    assert {r["stage_run_id"] for r in of_run["runs"]} == {s["stage_run_id"] for s in succeeded["stages"]}
    assert (page_one["total"], page_one["limit"], page_one["offset"]) == (6, 4, 0)
    assert len(page_one["runs"]) == 4
    assert len(page_two["runs"]) == 2
    paged = [r["stage_run_id"] for r in page_one["runs"] + page_two["runs"]]
    assert paged == [r["stage_run_id"] for r in everything["runs"]]
    created = [r["created_at"] for r in everything["runs"]]
    assert created == sorted(created, reverse=True)
    assert created[0] == succeeded["stages"][0]["created_at"]
    assert failed["stages"][0]["created_at"] == created[-1]
    await fail(legacy_session, "list_runs", "INVALID_ARGUMENT", limit=0)
    await fail(legacy_session, "list_runs", "WORKSPACE_NOT_FOUND", workspace="nobody")


# -- resources, arguments, dry runs ----------------------------------------------------------


@pytest.mark.anyio
async def test_run_resources_for_logs_and_manifest_read_a_finished_stage(legacy_session: Client) -> None:
    templates = {t.uri_template for t in (await legacy_session.list_resource_templates()).resource_templates}
    wanted = {"goldfish://runs/{run_id}/logs", "goldfish://runs/{run_id}/manifest"}
    if not wanted <= templates:
        pytest.skip(f"run resources are not registered yet (templates: {sorted(templates)})")
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"lines": 2}})
    prep = by_stage((await run_to_end(legacy_session))["stages"])["prep"]["stage_run_id"]

    log_text = await legacy_session.read_resource(f"goldfish://runs/{prep}/logs")
    found = await legacy_session.read_resource(f"goldfish://runs/{prep}/manifest")

    log_body = "".join(getattr(c, "text", "") for c in log_text.contents)
    assert "prep line 1" in log_body
    manifest_body = json.loads("".join(getattr(c, "text", "") for c in found.contents))
    assert manifest_body["stage_run_id"] == prep
    assert manifest_body["outputs"] == (await manifest(legacy_session, prep))["outputs"]


@pytest.mark.anyio
async def test_run_without_results_spec_is_refused_with_a_structured_error_and_saves_nothing(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)

    error = await fail(legacy_session, "run", "INVALID_ARGUMENT", workspace="w1", reason=LONG_REASON)

    assert "results_spec" in error["message"]
    assert error["details"]["field"] == "results_spec"
    assert "primary_metric" in error["remedy"]
    bad_spec = await fail(
        legacy_session,
        "run",
        "INVALID_ARGUMENT",
        workspace="w1",
        reason=LONG_REASON,
        results_spec={"primary_metric": "loss", "direction": "sideways"},
    )
    assert "direction" in bad_spec["message"]
    assert await version_names(legacy_session, "alpha") == []
    assert (await ok(legacy_session, "list_runs"))["total"] == 0


@pytest.mark.anyio
async def test_run_with_dry_run_returns_the_plan_and_creates_no_version_or_run(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"value": 7, "compute": {"timeout_seconds": 90}}})

    plan = await start_run(legacy_session, dry_run=True, results_spec=None)

    assert plan["dry_run"] is True
    assert plan["state"] == "dry_run"
    assert (plan["pipeline_run_id"], plan["version"], plan["version_created"]) == (None, None, False)
    stages = by_stage(plan["stages"])
    assert list(stages) == ["prep", "train", "evaluate"]
    assert stages["train"]["config"] == {"value": 7}
    assert stages["train"]["timeout_seconds"] == 90
    assert {s["backend"] for s in plan["stages"]} == {"process"}
    assert await version_names(legacy_session, "alpha") == []
    assert (await ok(legacy_session, "list_runs"))["total"] == 0
