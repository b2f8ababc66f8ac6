"""Caching and partial runs: unchanged re-runs reuse stages, a config change re-runs downstream only,
stage subsets, input overrides and resume after a failure.

Stages are real processes started by the detached pipeline driver; waits are bounded polls.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    by_stage,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
    write_pipeline,
)
from tests.integration.runs.runs_support import (
    manifest,
    output_hash,
    run_to_end,
)

pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


@pytest.mark.anyio
async def test_rerun_when_nothing_changed_reuses_every_stage_and_use_cache_false_executes(
    client: Client,
) -> None:
    slot = await workspace_in_slot(client, "alpha")
    write_pipeline(slot)
    first = await run_to_end(client)
    first_ids = [s["stage_run_id"] for s in first["stages"]]

    again = await start_run(client)

    assert again["finished"] is True
    assert again["state"] == "completed"
    assert (again["version"], again["version_created"]) == ("v1", False)
    assert [s["cache_hit"] for s in again["stages"]] == [True, True, True]
    assert [s["cached_from"] for s in again["stages"]] == first_ids
    assert not set(first_ids) & {s["stage_run_id"] for s in again["stages"]}
    cached_manifest = await manifest(client, again["stages"][0]["stage_run_id"])
    assert cached_manifest["outputs"][0]["content_hash"] == output_hash(
        await manifest(client, first_ids[0]), "features"
    )

    forced = await run_to_end(client, use_cache=False)

    assert forced["state"] == "completed"
    assert [s["cache_hit"] for s in forced["stages"]] == [False, False, False]
    assert all(s["exit_code"] == 0 and s["cached_from"] is None for s in forced["stages"])


@pytest.mark.anyio
async def test_rerun_when_a_config_value_changes_reruns_that_stage_and_downstream_only(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"value": 1}})
    first = by_stage((await run_to_end(legacy_session))["stages"])
    write_configs(slot, {"train": {"value": 2}})

    second_run = await run_to_end(legacy_session)

    assert second_run["version"] == "v2"
    second = by_stage(second_run["stages"])
    assert (second["prep"]["cache_hit"], second["prep"]["cached_from"]) == (
        True,
        first["prep"]["stage_run_id"],
    )
    for name in ("train", "evaluate"):
        assert (second[name]["status"], second[name]["cache_hit"]) == ("completed", False), name
    old_model = output_hash(await manifest(legacy_session, first["train"]["stage_run_id"]), "model")
    new_model = output_hash(await manifest(legacy_session, second["train"]["stage_run_id"]), "model")
    assert old_model != new_model
    detail = await ok(legacy_session, "inspect_run", run_id=second["train"]["stage_run_id"])
    assert detail["inspect"]["metadata"]["config"]["value"] == 2


# -- choosing stages and inputs --------------------------------------------------------------


@pytest.mark.anyio
async def test_run_of_a_stage_subset_reads_upstream_from_the_latest_successful_producer(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"value": 1}})
    await run_to_end(legacy_session)
    write_configs(slot, {"prep": {"value": 2}})
    newer_prep = (await run_to_end(legacy_session, stages=["prep"]))["stages"]
    assert [s["stage"] for s in newer_prep] == ["prep"]

    subset = await run_to_end(legacy_session, stages=["train"])

    (train,) = subset["stages"]
    assert (train["stage"], train["status"]) == ("train", "completed")
    (features,) = (await manifest(legacy_session, train["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == newer_prep[0]["stage_run_id"]
    assert features["content_hash"] == output_hash(
        await manifest(legacy_session, newer_prep[0]["stage_run_id"]), "features"
    )


@pytest.mark.anyio
async def test_run_with_inputs_override_reads_the_named_stage_run_instead_of_the_latest(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"prep": {"value": 1}})
    older_prep = by_stage((await run_to_end(legacy_session, stages=["prep"]))["stages"])["prep"]
    write_configs(slot, {"prep": {"value": 2}})
    await run_to_end(legacy_session, stages=["prep"])

    pinned = await run_to_end(
        legacy_session, stages=["train"], inputs_override={"features": older_prep["stage_run_id"]}
    )

    (train,) = pinned["stages"]
    assert train["status"] == "completed"
    (features,) = (await manifest(legacy_session, train["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == older_prep["stage_run_id"]
    assert features["content_hash"] == output_hash(
        await manifest(legacy_session, older_prep["stage_run_id"]), "features"
    )


@pytest.mark.anyio
async def test_resume_pipeline_after_a_failure_reruns_the_failed_stage_and_downstream_only(
    legacy_session: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "train-may-run"
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, configs={"train": {"needs_file": str(marker)}})
    failed = await run_to_end(legacy_session)
    assert [s["status"] for s in failed["stages"]] == ["completed", "failed", "skipped"]
    original = by_stage(failed["stages"])
    marker.write_text("go", encoding="utf-8")

    resumed = await ok(
        legacy_session, "resume_pipeline", pipeline_run_id=failed["pipeline_run_id"], reason=LONG_REASON
    )

    new_id = resumed["run"]["pipeline_run_id"]
    assert new_id != failed["pipeline_run_id"]
    assert resumed["run"]["version"] == failed["version"]
    final = await wait_for_pipeline(legacy_session, new_id)
    assert final["state"] == "completed"
    assert [(s["stage"], s["status"], s["cache_hit"]) for s in final["stages"]] == [
        ("train", "completed", False),
        ("evaluate", "completed", False),
    ]
    (features,) = (await manifest(legacy_session, final["stages"][0]["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == original["prep"]["stage_run_id"]
    prep_runs = await ok(legacy_session, "list_runs", stage="prep")
    assert prep_runs["total"] == 1
    error = await fail(
        legacy_session, "resume_pipeline", "INVALID_ARGUMENT", pipeline_run_id=new_id, reason=LONG_REASON
    )
    assert "nothing to resume" in error["message"]


# -- lineage, metrics, logs ------------------------------------------------------------------
