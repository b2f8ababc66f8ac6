"""Experiment memory through real MCP sessions: records, finalization, the gate, history, tags, context.

Every run here is a real pipeline run of a two-stage pipeline (``prep`` -> ``train``) whose
``train`` stage logs a metric ``score`` through ``goldfish.io.log_metric``: first 0.1, then the
value of ``score`` in ``configs/train.yaml``. Waits are bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    by_stage,
    fail,
    ok,
    pipeline_info,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    workspace_in_slot,
    write_configs,
)

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
WORKSPACE = "exp"
SPEC: dict[str, Any] = {
    "primary_metric": "score",
    "direction": "maximize",
    "min_value": 0.7,
    "goal_value": 0.85,
    "dataset_split": "val",
    "tolerance": 0.01,
}
STORED_SPEC = SPEC | {"secondary_metrics": []}  # the spec as validated and stored

SCORED_PIPELINE = """\
name: scored
stages:
  - name: prep
    outputs:
      data: {type: file}
  - name: train
    inputs:
      data: {type: file, from_stage: prep}
    outputs:
      model: {type: file}
"""

PREP = """\
import tempfile
from pathlib import Path

from goldfish.io import get_config, save_output

path = Path(tempfile.mkdtemp()) / "data.txt"
path.write_text(f"rows={get_config().get('rows', 10)}")
save_output("data", path)
"""

TRAIN = """\
import tempfile
import time
from pathlib import Path

from goldfish.io import get_config, log_metric, save_output, should_stop

cfg = get_config()
deadline = time.monotonic() + float(cfg.get("sleep", 0))
while time.monotonic() < deadline and not should_stop():
    time.sleep(0.05)
log_metric("score", 0.1, step=0)
log_metric("score", float(cfg["score"]), step=1)
path = Path(tempfile.mkdtemp()) / "model.txt"
path.write_text(f"score={cfg['score']}")
save_output("model", path)
"""


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def session(project_root: Path) -> AsyncIterator[Client]:
    """One handshake-era session on a project with the finalization gate off."""
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client


@pytest.fixture
async def gated(gated_project_root: Path) -> AsyncIterator[Client]:
    """One handshake-era session on a project with the default config (finalization gate on)."""
    with reaped_at_exit(gated_project_root):
        async with Client(server_for(gated_project_root), mode="legacy") as client:
            yield client


@pytest.fixture(autouse=True)
def no_stray_processes(project_root: Path) -> Iterator[None]:
    """Kill whatever driver or stage a failing test leaves behind (by recorded pid only)."""
    with reaped_at_exit(project_root):
        yield


# -- helpers ---------------------------------------------------------------------------------


async def scored_workspace(client: Client, name: str = WORKSPACE) -> Path:
    """Create and mount ``name`` in w1 with the scored pipeline; return the slot."""
    slot = await workspace_in_slot(client, name)
    (slot / "pipeline.yaml").write_text(SCORED_PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir()
    (slot / "modules" / "prep.py").write_text(PREP, encoding="utf-8")
    (slot / "modules" / "train.py").write_text(TRAIN, encoding="utf-8")
    return slot


def set_score(slot: Path, score: float, **extra: Any) -> None:
    """Write configs/train.yaml: the score train logs last (a new version on the next run)."""
    write_configs(slot, {"train": {"score": score, **extra}})


async def run_scored(client: Client, slot: Path, score: float, **arguments: Any) -> dict[str, Any]:
    """Set the score, run the pipeline to its end and return the run's answer (with record_id)."""
    set_score(slot, score)
    arguments.setdefault("results_spec", SPEC)
    submission = await start_run(client, **arguments)
    final = await wait_for_pipeline(client, submission["pipeline_run_id"])
    assert final["state"] == "completed", final
    return submission


async def finalize(
    client: Client, ref: str, value: float | None, outcome: str, **arguments: Any
) -> dict[str, Any]:
    """finalize_run with the usual results; return the finalize answer."""
    results = {
        "primary_metric": "score",
        "direction": "maximize",
        "value": value,
        "dataset_split": "val",
        "ml_outcome": outcome,
        "notes": "recorded by the test",
    }
    result = await ok(client, "finalize_run", record_or_run_id=ref, results=results, **arguments)
    found: dict[str, Any] = result["finalize"]
    return found


async def history(client: Client, **arguments: Any) -> dict[str, Any]:
    arguments.setdefault("workspace", WORKSPACE)
    return await ok(client, "list_history", **arguments)


async def record_of(client: Client, ref: str, **arguments: Any) -> dict[str, Any]:
    result = await ok(client, "inspect_record", ref=ref, **arguments)
    found: dict[str, Any] = result["inspect"]
    return found


async def pending(client: Client, **arguments: Any) -> list[dict[str, Any]]:
    result = await ok(client, "list_unfinalized_runs", **arguments)
    runs: list[dict[str, Any]] = result["runs"]
    assert result["total"] == len(runs)
    return runs


def values(records: list[dict[str, Any]]) -> list[float | None]:
    return [r["value"] for r in records]


# -- records and refs ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_when_it_ends_has_one_ulid_run_record_covering_its_stages_and_a_version_record(
    client: Client,
) -> None:
    slot = await scored_workspace(client)
    reason = {
        "description": "does a higher score config show up as the metric",
        "hypothesis": "the logged score follows the config",
    }

    submission = await run_scored(client, slot, 0.8, reason=reason, experiment_group="smoke")

    record_id = submission["record_id"]
    assert ULID.fullmatch(record_id)
    assert {s["record_id"] for s in submission["stages"]} == {record_id}
    listed = await history(client)
    assert listed["total"] == 2
    run, version = sorted(listed["records"], key=lambda r: r["record_type"])
    assert (run["record_id"], run["record_type"], run["version"]) == (record_id, "run", "v1")
    assert run["pipeline_run_id"] == submission["pipeline_run_id"]
    assert run["reason"] == reason
    assert run["results_spec"] == STORED_SPEC
    assert run["experiment_group"] == "smoke"
    assert (run["run_state"], run["finalized"], run["ml_outcome"], run["value"]) == (
        "completed",
        False,
        None,
        None,
    )
    assert run["age"].endswith("ago")
    assert ULID.fullmatch(version["record_id"]) and version["record_id"] != record_id
    assert (version["record_type"], version["version"], version["pipeline_run_id"]) == ("version", "v1", None)
    detail = await record_of(client, record_id)
    assert sorted(detail["stage_runs"]) == sorted(s["stage_run_id"] for s in submission["stages"])


@pytest.mark.anyio
async def test_record_refs_by_record_id_stage_run_id_pipeline_run_id_and_tag_resolve_to_one_record(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    record_id = submission["record_id"]
    await ok(session, "tag_record", ref=record_id, tag="first", workspace=WORKSPACE)

    refs = [
        record_id,
        record_id.lower(),
        submission["pipeline_run_id"],
        *(s["stage_run_id"] for s in submission["stages"]),
    ]
    for ref in refs:
        assert (await record_of(session, ref))["record"]["record_id"] == record_id, ref
    assert (await record_of(session, "@first", workspace=WORKSPACE))["record"]["record_id"] == record_id
    assert (await record_of(session, "@first", workspace="w1"))["record"]["record_id"] == record_id
    done = await finalize(session, "@first", 0.8, "partial", workspace=WORKSPACE)
    assert done["record"]["record_id"] == record_id


@pytest.mark.anyio
async def test_record_refs_that_match_nothing_or_are_malformed_fail_with_structured_errors(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    await run_scored(session, slot, 0.8)

    for ref in ("stage-000000000000", "prun-000000000000", "01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        error = await fail(session, "inspect_record", "RECORD_NOT_FOUND", ref=ref)
        assert error["details"]["ref"] == ref
    await fail(session, "inspect_record", "RECORD_NOT_FOUND", ref="@missing", workspace=WORKSPACE)
    await fail(session, "inspect_record", "INVALID_ARGUMENT", ref="not a ref")
    await fail(session, "inspect_record", "INVALID_ARGUMENT", ref="")
    error = await fail(session, "inspect_record", "INVALID_ARGUMENT", ref="@first")
    assert error["details"]["field"] == "workspace"
    await fail(session, "inspect_record", "INVALID_ARGUMENT", ref="@bad tag!", workspace=WORKSPACE)
    await fail(session, "inspect_record", "WORKSPACE_NOT_FOUND", ref="@first", workspace="nowhere")
    results = {"primary_metric": "score", "direction": "maximize", "value": 0.8, "dataset_split": "val"}
    await fail(
        session,
        "finalize_run",
        "RECORD_NOT_FOUND",
        record_or_run_id="prun-000000000000",
        results={**results, "ml_outcome": "partial"},
    )
    # The shape of typed arguments is checked before anything is looked up.
    await fail(session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id="prun-000000000000", results={})
    await fail(session, "tag_record", "RECORD_NOT_FOUND", ref="stage-000000000000", tag="x1")


# -- finalize_run ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_finalize_run_when_results_are_incomplete_unknown_or_out_of_range_is_invalid_argument(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    prun = (await run_scored(session, slot, 0.8))["pipeline_run_id"]
    good = {
        "primary_metric": "score",
        "direction": "maximize",
        "value": 0.8,
        "dataset_split": "val",
        "ml_outcome": "partial",
    }

    missing = await fail(
        session,
        "finalize_run",
        "INVALID_ARGUMENT",
        record_or_run_id=prun,
        results={"primary_metric": "score"},
    )
    for key in ("direction", "value", "dataset_split", "ml_outcome"):
        assert key in missing["message"], missing
    typo = {k: v for k, v in good.items() if k != "value"} | {"valeu": 0.8}
    unknown = await fail(session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=typo)
    assert "did you mean 'value'" in unknown["message"]
    outcome = await fail(
        session,
        "finalize_run",
        "INVALID_ARGUMENT",
        record_or_run_id=prun,
        results=good | {"ml_outcome": "great"},
    )
    assert "ml_outcome" in outcome["message"]
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"direction": "up"}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"value": None}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=good | {"value": "high"}
    )
    await fail(
        session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=prun, results=["not", "a", "dict"]
    )
    version_record = (await history(session, record_type="version"))["records"][0]["record_id"]
    await fail(session, "finalize_run", "INVALID_ARGUMENT", record_or_run_id=version_record, results=good)
    # Nothing was recorded by the refused calls.
    assert (await record_of(session, prun))["results"] == []


@pytest.mark.anyio
async def test_finalize_run_with_the_suggested_value_then_again_needs_a_reason_and_keeps_the_history(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    prun = submission["pipeline_run_id"]
    train = by_stage(submission["stages"])["train"]["stage_run_id"]

    (waiting,) = await pending(session, workspace=WORKSPACE)
    assert waiting["pipeline_run_id"] == prun
    suggestion = waiting["suggestion"]
    assert suggestion == {
        "primary_metric": "score",
        "direction": "maximize",
        "value": 0.8,
        "from_stage_run": train,
        "dataset_split": "val",
        "ml_outcome": "partial",
    }
    first = await finalize(session, train, suggestion["value"], suggestion["ml_outcome"])
    assert (first["record"]["finalized"], first["record"]["value"], first["refinalized"]) == (
        True,
        0.8,
        False,
    )
    assert first["warnings"] == []
    assert await pending(session) == []

    again = await fail(
        session,
        "finalize_run",
        "ALREADY_FINALIZED",
        record_or_run_id=prun,
        results=first["finalization"]["results"] | {"value": 0.5},
    )
    assert again["details"]["value"] == 0.8
    await fail(
        session,
        "finalize_run",
        "REASON_REQUIRED",
        record_or_run_id=prun,
        results=first["finalization"]["results"],
        reason="short",
    )
    why = "the validation split had a leak; re-measured on a clean split"
    second = await finalize(session, prun, 0.74, "partial", reason=why)
    assert (second["record"]["value"], second["refinalized"]) == (0.74, True)

    detail = await record_of(session, submission["record_id"])
    older, newer = detail["results"]
    assert (older["results"]["value"], older["reason"]) == (0.8, None)
    assert older["superseded_at"] is not None
    assert (newer["results"]["value"], newer["reason"], newer["superseded_at"]) == (0.74, why, None)
    assert detail["record"]["value"] == 0.74
    assert detail["suggestion"] is None
    # Every finalize_run call left an audit row, refused ones included.
    audit = await ok(session, "get_audit_log", limit=50)
    finalizations = [(e["outcome"], e["error_code"]) for e in audit["entries"] if e["tool"] == "finalize_run"]
    assert finalizations == [
        ("success", None),
        ("error", "REASON_REQUIRED"),
        ("error", "ALREADY_FINALIZED"),
        ("success", None),
    ]


@pytest.mark.anyio
async def test_finalize_run_never_changes_the_run_its_stages_or_its_version(session: Client) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    prun = submission["pipeline_run_id"]

    def picture(info: dict[str, Any]) -> list[Any]:
        stages = [(s["stage_run_id"], s["status"], s["exit_code"], s["finished_at"]) for s in info["stages"]]
        return [info["state"], info["finished_at"], info["error"], info["version"], stages]

    before = picture(await pipeline_info(session, prun))
    versions = await ok(session, "manage_versions", workspace=WORKSPACE, action="list")
    first = await finalize(session, prun, 0.8, "partial")
    other_split = first["finalization"]["results"] | {"dataset_split": "test"}
    why = "re-finalized on the test split to check nothing else moves"
    second = await ok(session, "finalize_run", record_or_run_id=prun, results=other_split, reason=why)
    # Recorded, with a warning that it disagrees with the results spec.
    assert second["finalize"]["warnings"] == ["dataset_split 'test' differs from the results spec's 'val'."]

    assert picture(await pipeline_info(session, prun)) == before
    assert await ok(session, "manage_versions", workspace=WORKSPACE, action="list") == versions


@pytest.mark.anyio
async def test_finalize_run_while_the_run_is_going_is_run_not_finished_and_after_cancel_takes_unknown(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    set_score(slot, 0.8, sleep=30)
    submission = await start_run(session, results_spec=SPEC)
    prun = submission["pipeline_run_id"]
    train = by_stage(submission["stages"])["train"]["stage_run_id"]
    await wait_for_stage(session, train, lambda run: run["status"] == "running")

    error = await fail(
        session,
        "finalize_run",
        "RUN_NOT_FINISHED",
        record_or_run_id=train,
        results={"primary_metric": "score", "direction": "maximize", "value": 0.1, "dataset_split": "val"}
        | {"ml_outcome": "miss"},
    )
    assert error["details"]["pipeline_run_id"] == prun
    assert await pending(session) == []

    await ok(session, "cancel", run_id=prun, reason=LONG_REASON)
    assert (await wait_for_pipeline(session, prun))["state"] == "canceled"
    (waiting,) = await pending(session)
    assert (waiting["run_state"], waiting["suggestion"]["value"], waiting["suggestion"]["ml_outcome"]) == (
        "canceled",
        None,
        None,
    )
    done = await finalize(session, prun, None, "unknown")
    assert (done["record"]["ml_outcome"], done["record"]["value"]) == ("unknown", None)


@pytest.mark.anyio
async def test_save_results_spec_replaces_the_runs_spec_and_the_suggestion_follows_it(
    session: Client,
) -> None:
    slot = await scored_workspace(session)
    submission = await run_scored(session, slot, 0.8)
    train = by_stage(submission["stages"])["train"]["stage_run_id"]
    easier = STORED_SPEC | {"goal_value": 0.75}

    saved = await ok(session, "save_results_spec", stage_run_id=train, spec=easier, reason=LONG_REASON)

    assert saved["spec"]["results_spec"] == easier
    assert saved["spec"]["record_id"] == submission["record_id"]
    detail = await record_of(session, submission["pipeline_run_id"])
    assert detail["record"]["results_spec"] == easier
    assert detail["suggestion"]["ml_outcome"] == "success"
    assert (await pipeline_info(session, submission["pipeline_run_id"]))["results_spec"] == easier
    error = await fail(
        session, "save_results_spec", "INVALID_ARGUMENT", stage_run_id=train, spec={"primary_metrc": "score"}
    )
    assert "did you mean 'primary_metric'" in error["message"]


# -- the finalization gate -------------------------------------------------------------------


@pytest.mark.anyio
async def test_gate_when_a_finished_run_is_unfinalized_blocks_the_next_run_until_it_is_finalized(
    gated: Client,
) -> None:
    slot = await scored_workspace(gated)
    first = await run_scored(gated, slot, 0.8)
    versions = await ok(gated, "manage_versions", workspace=WORKSPACE, action="list")
    set_score(slot, 0.9)

    error = await fail(
        gated, "run", "FINALIZATION_REQUIRED", workspace="w1", reason=LONG_REASON, results_spec=SPEC
    )

    assert first["pipeline_run_id"] in error["message"]
    (listed,) = error["details"]["runs"]
    assert (listed["pipeline_run_id"], listed["record_id"]) == (first["pipeline_run_id"], first["record_id"])
    assert listed["suggestion"]["value"] == 0.8
    assert "finalize_run" in error["remedy"]
    assert "memory.finalization_gate: false" in error["remedy"]
    # The refused run saved nothing; a dry run is never blocked.
    assert await ok(gated, "manage_versions", workspace=WORKSPACE, action="list") == versions
    dry = await ok(gated, "run", workspace="w1", reason=LONG_REASON, dry_run=True)
    assert dry["run"]["dry_run"] is True

    (waiting,) = await pending(gated, workspace="w1")
    suggestion = waiting["suggestion"]
    await finalize(gated, first["record_id"], suggestion["value"], suggestion["ml_outcome"])
    second = await run_scored(gated, slot, 0.9)
    assert second["version"] == "v2"


@pytest.mark.anyio
async def test_gate_when_a_run_was_canceled_blocks_until_it_is_finalized_as_unknown(gated: Client) -> None:
    slot = await scored_workspace(gated)
    set_score(slot, 0.8, sleep=30)
    submission = await start_run(gated, results_spec=SPEC)
    prun = submission["pipeline_run_id"]
    await ok(gated, "cancel", run_id=prun, reason=LONG_REASON)
    await wait_for_pipeline(gated, prun)

    error = await fail(
        gated, "run", "FINALIZATION_REQUIRED", workspace="w1", reason=LONG_REASON, results_spec=SPEC
    )
    assert error["details"]["runs"][0]["run_state"] == "canceled"

    await finalize(gated, prun, None, "unknown")
    await run_scored(gated, slot, 0.7)


@pytest.mark.anyio
async def test_gate_switched_off_lets_a_workspace_run_again_without_finalizing(session: Client) -> None:
    slot = await scored_workspace(session)
    await run_scored(session, slot, 0.6)
    await run_scored(session, slot, 0.7)

    assert len(await pending(session, workspace=WORKSPACE)) == 2


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
