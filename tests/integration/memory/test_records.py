"""Experiment memory through real MCP sessions: run records and the refs that name them."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.integration.memory.memory_support import (
    STORED_SPEC,
    ULID,
    WORKSPACE,
    finalize,
    history,
    record_of,
    run_scored,
    scored_workspace,
)
from tests.integration.pipeline_fixtures import fail, ok

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
