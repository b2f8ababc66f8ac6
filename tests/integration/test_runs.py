"""Pipelines and runs through real MCP sessions: run, inspect, logs, cancel, caching, lineage.

Each test writes a small pipeline into the mounted slot ``w1`` (see ``pipeline_fixtures``) and
drives it with the tools an agent uses. Stages are real processes started by the detached
pipeline driver; versions are real saves; everything is read back from the real database and
storage. Waits are bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    STAGE_ID_PATTERN,
    by_stage,
    eventually,
    fail,
    group_alive,
    ok,
    process_alive,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    workspace_in_slot,
    write_configs,
    write_pipeline,
)

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def no_stray_processes(project_root: Path) -> Iterator[None]:
    """Kill whatever driver or stage a failing test leaves behind (by recorded pid only)."""
    with reaped_at_exit(project_root):
        yield


@pytest.fixture
async def session(project_root: Path) -> AsyncIterator[Client]:
    """One in-memory session (handshake era) for the tests that need not run in both eras."""
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client


# -- helpers ---------------------------------------------------------------------------------


async def manifest(client: Client, stage_run_id: str) -> dict[str, Any]:
    result = await ok(client, "inspect_run", run_id=stage_run_id, include=["manifest"])
    found: dict[str, Any] = result["inspect"]["manifest"]
    return found


async def version_names(client: Client, workspace: str) -> list[str]:
    result = await ok(client, "manage_versions", workspace=workspace, action="list", limit=200)
    return [v["version"] for v in result["versions"]["versions"]]


async def run_to_end(client: Client, **arguments: Any) -> dict[str, Any]:
    """Start a run and wait (bounded) until its pipeline run is terminal."""
    submission = await start_run(client, **arguments)
    assert submission["pipeline_run_id"] is not None, submission
    return await wait_for_pipeline(client, submission["pipeline_run_id"])


async def logs(client: Client, run_id: str, **arguments: Any) -> dict[str, Any]:
    result = await ok(client, "logs", run_id=run_id, **arguments)
    chunk: dict[str, Any] = result["logs"]
    return chunk


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def running(run: dict[str, Any]) -> bool:
    return bool(run["status"] == "running")


def terminal(run: dict[str, Any]) -> bool:
    return run["finished_at"] is not None


def output_hash(found: dict[str, Any], signal: str) -> str:
    hashes = [o["content_hash"] for o in found["outputs"] if o["signal"] == signal]
    assert len(hashes) == 1, found["outputs"]
    value: str = hashes[0]
    return value


# -- a pipeline that works -------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_with_wait_when_three_stages_succeed_completes_each_with_hashed_lineage(
    client: Client,
) -> None:
    slot = await workspace_in_slot(client, "alpha")
    write_pipeline(slot)

    result = await ok(client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC, wait=True)

    run = result["run"]
    assert result["still_running"] is False
    assert run["state"] == "completed"
    assert run["finished"] is True
    assert (run["version"], run["version_created"]) == ("v1", True)
    stages = by_stage(run["stages"])
    assert list(stages) == ["prep", "train", "evaluate"]
    for stage in stages.values():
        assert re.fullmatch(STAGE_ID_PATTERN, stage["stage_run_id"])
        assert stage["pipeline_run_id"] == run["pipeline_run_id"]
        assert (stage["status"], stage["exit_code"], stage["cache_hit"]) == ("completed", 0, False)
        assert stage["version"] == "v1"
        assert stage["backend"] == "process"
    manifests = {name: await manifest(client, s["stage_run_id"]) for name, s in stages.items()}
    for name, found in manifests.items():
        assert found["version"] == "v1"
        assert found["version_tag"] == "alpha-v1"
        assert found["outputs"], name
        for output in found["outputs"]:
            assert HEX64.fullmatch(output["content_hash"]), output
            assert output["size_bytes"] > 0
            assert Path(urlparse(output["uri"]).path).exists(), output["uri"]
    # Each consumer's input row names its producer and carries the producer's output hash.
    (features,) = manifests["train"]["inputs"]
    assert features["producer_run_id"] == stages["prep"]["stage_run_id"]
    assert features["content_hash"] == output_hash(manifests["prep"], "features")
    (model,) = manifests["evaluate"]["inputs"]
    assert model["producer_run_id"] == stages["train"]["stage_run_id"]
    assert model["content_hash"] == output_hash(manifests["train"], "model")
    assert stages["train"]["inputs"][0]["content_hash"] == features["content_hash"]


@pytest.mark.anyio
async def test_run_when_it_returns_has_saved_the_version_the_stages_run(session: Client) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 30}})

    submission = await start_run(session, wait=False)

    # The version exists while the first stage has not finished.
    assert (submission["version"], submission["version_created"]) == ("v1", True)
    assert submission["finished"] is False
    listed = await ok(session, "manage_versions", workspace="alpha", action="list")
    (version,) = listed["versions"]["versions"]
    assert (version["version"], version["source"]) == ("v1", "run")
    prep = by_stage(submission["stages"])["prep"]
    current = await ok(session, "inspect_run", run_id=prep["stage_run_id"])
    assert current["inspect"]["run"]["finished_at"] is None
    assert all(s["version"] == "v1" for s in submission["stages"])
    started = await wait_for_stage(session, prep["stage_run_id"], running)
    assert when(version["created_at"]) <= when(started["started_at"])
    canceled = await ok(session, "cancel", run_id=submission["pipeline_run_id"], reason=LONG_REASON)
    assert canceled["cancel"]["pipeline_run"]["state"] == "canceled"


# -- failures --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_when_a_stage_exits_non_zero_fails_it_with_its_code_and_skips_downstream(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"exit_code": 3}})

    final = await run_to_end(session)

    assert final["state"] == "failed"
    stages = by_stage(final["stages"])
    assert stages["prep"]["status"] == "completed"
    train = stages["train"]
    assert (train["status"], train["failure_kind"], train["exit_code"]) == ("failed", "stage_error", 3)
    assert "code 3" in train["error"]
    assert "train" in final["error"]
    evaluate = stages["evaluate"]
    assert evaluate["status"] == "skipped"
    assert "train" in evaluate["error"]
    assert evaluate["started_at"] is None
    stderr = await logs(session, train["stage_run_id"], stream="stderr")
    assert "train fails on purpose with 3" in stderr["lines"]


@pytest.mark.anyio
async def test_run_when_a_declared_output_is_not_written_fails_with_missing_output_naming_it(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"skip_outputs": ["model"]}})

    final = await run_to_end(session)

    stages = by_stage(final["stages"])
    train = stages["train"]
    assert (train["status"], train["failure_kind"], train["exit_code"]) == ("failed", "missing_output", 0)
    assert "model" in train["error"]
    assert stages["evaluate"]["status"] == "skipped"
    assert (await manifest(session, train["stage_run_id"]))["outputs"] == []


@pytest.mark.anyio
async def test_run_when_a_stage_exceeds_its_timeout_stops_it_politely_times_it_out_and_its_process_is_gone(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(
        slot, configs={"prep": {"sleep": 30, "obey_stop": True, "compute": {"timeout_seconds": 1}}}
    )

    final = await run_to_end(session)

    assert final["state"] == "failed"
    stages = by_stage(final["stages"])
    prep = stages["prep"]
    assert prep["status"] == "timed_out"
    assert "timeout of 1s" in prep["error"]
    assert [stages["train"]["status"], stages["evaluate"]["status"]] == ["skipped", "skipped"]
    detail = await ok(session, "inspect_run", run_id=prep["stage_run_id"])
    assert detail["inspect"]["metadata"]["timeout_seconds"] == 1
    pid = int(detail["inspect"]["backend_handle"]["pid"])
    assert not group_alive(pid)
    # The stage was stopped politely first: should_stop() turned true and it said so.
    assert "prep was asked to stop" in (await logs(session, prep["stage_run_id"]))["lines"]


@pytest.mark.anyio
async def test_cancel_when_a_stage_is_running_kills_its_process_group_and_repeats_harmlessly(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 30, "spawn_child": True}})
    submission = await start_run(session)
    prep_id = by_stage(submission["stages"])["prep"]["stage_run_id"]
    await wait_for_stage(session, prep_id, running)

    async def child_pid() -> int | None:
        lines = (await logs(session, prep_id))["lines"]
        return next((int(line.split()[-1]) for line in lines if line.startswith("prep child ")), None)

    child = await eventually(child_pid)
    detail = await ok(session, "inspect_run", run_id=prep_id)
    pid = int(detail["inspect"]["backend_handle"]["pid"])
    assert group_alive(pid)

    first = await ok(session, "cancel", run_id=prep_id, reason=LONG_REASON)

    assert first["cancel"]["run"]["status"] == "canceled"
    assert not group_alive(pid)
    assert not process_alive(child)
    again = await ok(session, "cancel", run_id=prep_id, reason=LONG_REASON)
    assert again["cancel"]["run"]["status"] == "canceled"
    assert again["cancel"]["run"]["finished_at"] == first["cancel"]["run"]["finished_at"]
    final = await wait_for_pipeline(session, submission["pipeline_run_id"])
    assert final["state"] == "canceled"
    assert [s["status"] for s in final["stages"]] == ["canceled", "skipped", "skipped"]


# -- invalid pipelines -----------------------------------------------------------------------

CYCLE = """\
stages:
  - name: prep
    inputs:
      back: {type: npy, from_stage: train, signal: weights}
    outputs:
      features: {type: npy}
  - name: train
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      weights: {type: npy}
"""


def _unknown_key(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("  - name: train\n", "  - name: train\n    modul: train\n"), encoding="utf-8"
    )


def _cycle(slot: Path) -> None:
    write_pipeline(slot, CYCLE)


def _unknown_from_stage(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("from_stage: train", "from_stage: trian"), encoding="utf-8"
    )


def _type_mismatch(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("features: {type: npy, from_stage: prep}", "features: {type: csv, from_stage: prep}"),
        encoding="utf-8",
    )


def _missing_module(slot: Path) -> None:
    write_pipeline(slot)
    (slot / "modules" / "evaluate.py").unlink()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("breaks", "stage", "line", "expected"),
    [
        (_unknown_key, "train", 7, "unknown key 'modul' (did you mean 'module'?)"),
        (_cycle, "prep", None, "cycle: "),
        (_unknown_from_stage, "evaluate", 13, "from_stage 'trian' does not exist (did you mean 'train'?)"),
        (_type_mismatch, "train", 8, "expects csv but 'prep.features' is npy"),
        (_missing_module, "evaluate", 11, "module file modules/evaluate.py does not exist"),
    ],
    ids=["unknown-key", "cycle", "unknown-from-stage", "type-mismatch", "missing-module"],
)
async def test_run_when_pipeline_is_invalid_reports_file_line_stage_and_saves_no_version(
    session: Client, breaks: Callable[[Path], None], stage: str, line: int | None, expected: str
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    breaks(slot)

    error = await fail(
        session, "run", "PIPELINE_INVALID", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC
    )

    assert expected in error["message"]
    problems = error["details"]["problems"]
    matching = [p for p in problems if expected in p["message"]]
    assert matching, problems
    problem = matching[0]
    assert problem["path"] == "pipeline.yaml"
    assert problem["stage"] == stage
    assert isinstance(problem["line"], int)
    if line is not None:
        assert problem["line"] == line
    if breaks is _cycle:
        assert "prep" in problem["message"]
        assert "train" in problem["message"]
    assert await version_names(session, "alpha") == []
    assert (await ok(session, "list_runs"))["total"] == 0


@pytest.mark.anyio
async def test_run_when_a_dataset_input_is_not_registered_is_invalid_and_names_register_source(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace(
            "  - name: prep\n", "  - name: prep\n    inputs:\n      raw: {type: dataset, dataset: iris_v1}\n"
        ),
        encoding="utf-8",
    )

    error = await fail(
        session, "run", "PIPELINE_INVALID", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC
    )

    assert "register_source" in error["message"]
    (problem,) = error["details"]["problems"]
    assert (problem["stage"], problem["path"]) == ("prep", "pipeline.yaml")
    assert "iris_v1" in problem["message"]
    assert await version_names(session, "alpha") == []


# -- sources ---------------------------------------------------------------------------------

WITH_DATASET = """\
stages:
  - name: prep
    inputs:
      raw: {type: dataset, dataset: iris_v1}
    outputs:
      features: {type: npy}
"""


@pytest.mark.anyio
async def test_register_source_under_data_then_a_run_consumes_it_with_its_hash(
    session: Client, project_root: Path
) -> None:
    data = project_root / "data" / "iris.csv"
    data.parent.mkdir(exist_ok=True)
    data.write_text("sepal,petal\n1.0,2.0\n3.0,4.0\n", encoding="utf-8")
    registered = await ok(
        session,
        "register_source",
        name="iris_v1",
        uri="data/iris.csv",
        description="a tiny iris sample",
        reason=LONG_REASON,
    )
    source = registered["source"]
    assert HEX64.fullmatch(source["content_hash"])
    assert source["size_bytes"] == data.stat().st_size
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, WITH_DATASET)

    final = await run_to_end(session)

    assert final["state"] == "completed"
    prep_id = final["stages"][0]["stage_run_id"]
    (raw,) = (await manifest(session, prep_id))["inputs"]
    assert (raw["signal"], raw["source_name"]) == ("raw", "iris_v1")
    assert raw["content_hash"] == source["content_hash"]
    upstream = await ok(session, "get_lineage", run_id=prep_id, direction="upstream")
    (edge,) = upstream["edges"]
    assert (edge["source"], edge["signal"], edge["run_id"]) == ("iris_v1", "raw", None)


@pytest.mark.anyio
async def test_register_source_outside_the_data_folder_is_refused_as_invalid_path(
    session: Client, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a,b\n1,2\n", encoding="utf-8")

    for uri in (str(outside), outside.as_uri(), "data/../goldfish.yaml"):
        error = await fail(
            session,
            "register_source",
            "INVALID_PATH",
            name="stray",
            uri=uri,
            description="",
            reason=LONG_REASON,
        )
        assert "outside" in error["message"]
    listed = await ok(session, "manage_sources", action="list")
    assert listed["total"] == 0


# -- caching ---------------------------------------------------------------------------------


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
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"value": 1}})
    first = by_stage((await run_to_end(session))["stages"])
    write_configs(slot, {"train": {"value": 2}})

    second_run = await run_to_end(session)

    assert second_run["version"] == "v2"
    second = by_stage(second_run["stages"])
    assert (second["prep"]["cache_hit"], second["prep"]["cached_from"]) == (
        True,
        first["prep"]["stage_run_id"],
    )
    for name in ("train", "evaluate"):
        assert (second[name]["status"], second[name]["cache_hit"]) == ("completed", False), name
    old_model = output_hash(await manifest(session, first["train"]["stage_run_id"]), "model")
    new_model = output_hash(await manifest(session, second["train"]["stage_run_id"]), "model")
    assert old_model != new_model
    detail = await ok(session, "inspect_run", run_id=second["train"]["stage_run_id"])
    assert detail["inspect"]["metadata"]["config"]["value"] == 2


# -- choosing stages and inputs --------------------------------------------------------------


@pytest.mark.anyio
async def test_run_of_a_stage_subset_reads_upstream_from_the_latest_successful_producer(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"value": 1}})
    await run_to_end(session)
    write_configs(slot, {"prep": {"value": 2}})
    newer_prep = (await run_to_end(session, stages=["prep"]))["stages"]
    assert [s["stage"] for s in newer_prep] == ["prep"]

    subset = await run_to_end(session, stages=["train"])

    (train,) = subset["stages"]
    assert (train["stage"], train["status"]) == ("train", "completed")
    (features,) = (await manifest(session, train["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == newer_prep[0]["stage_run_id"]
    assert features["content_hash"] == output_hash(
        await manifest(session, newer_prep[0]["stage_run_id"]), "features"
    )


@pytest.mark.anyio
async def test_run_with_inputs_override_reads_the_named_stage_run_instead_of_the_latest(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"value": 1}})
    older_prep = by_stage((await run_to_end(session, stages=["prep"]))["stages"])["prep"]
    write_configs(slot, {"prep": {"value": 2}})
    await run_to_end(session, stages=["prep"])

    pinned = await run_to_end(
        session, stages=["train"], inputs_override={"features": older_prep["stage_run_id"]}
    )

    (train,) = pinned["stages"]
    assert train["status"] == "completed"
    (features,) = (await manifest(session, train["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == older_prep["stage_run_id"]
    assert features["content_hash"] == output_hash(
        await manifest(session, older_prep["stage_run_id"]), "features"
    )


@pytest.mark.anyio
async def test_resume_pipeline_after_a_failure_reruns_the_failed_stage_and_downstream_only(
    session: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "train-may-run"
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"needs_file": str(marker)}})
    failed = await run_to_end(session)
    assert [s["status"] for s in failed["stages"]] == ["completed", "failed", "skipped"]
    original = by_stage(failed["stages"])
    marker.write_text("go", encoding="utf-8")

    resumed = await ok(
        session, "resume_pipeline", pipeline_run_id=failed["pipeline_run_id"], reason=LONG_REASON
    )

    new_id = resumed["run"]["pipeline_run_id"]
    assert new_id != failed["pipeline_run_id"]
    assert resumed["run"]["version"] == failed["version"]
    final = await wait_for_pipeline(session, new_id)
    assert final["state"] == "completed"
    assert [(s["stage"], s["status"], s["cache_hit"]) for s in final["stages"]] == [
        ("train", "completed", False),
        ("evaluate", "completed", False),
    ]
    (features,) = (await manifest(session, final["stages"][0]["stage_run_id"]))["inputs"]
    assert features["producer_run_id"] == original["prep"]["stage_run_id"]
    prep_runs = await ok(session, "list_runs", stage="prep")
    assert prep_runs["total"] == 1
    error = await fail(
        session, "resume_pipeline", "INVALID_ARGUMENT", pipeline_run_id=new_id, reason=LONG_REASON
    )
    assert "nothing to resume" in error["message"]


# -- lineage, metrics, logs ------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_lineage_with_depth_two_follows_producers_and_consumers_across_stages(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot)
    stages = by_stage((await run_to_end(session))["stages"])
    prep, train, evaluate = (stages[n]["stage_run_id"] for n in ("prep", "train", "evaluate"))

    upstream = await ok(session, "get_lineage", run_id=evaluate, direction="upstream", depth=2)
    downstream = await ok(session, "get_lineage", run_id=prep, direction="downstream", depth=2)
    shallow = await ok(session, "get_lineage", run_id=prep, direction="downstream")

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
async def test_get_metrics_gives_summary_and_a_series_downsampled_to_max_points(session: Client) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"metrics": 50}})
    train = by_stage((await run_to_end(session))["stages"])["train"]["stage_run_id"]

    summary = await ok(session, "get_metrics", run_id=train, summary_only=True)
    full = await ok(session, "get_metrics", run_id=train, names=["loss"])
    thin = await ok(session, "get_metrics", run_id=train, names=["loss"], max_points=10)
    none = await ok(session, "get_metrics", run_id=train, names=["accuracy"])

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
    await fail(session, "get_metrics", "INVALID_ARGUMENT", run_id=train, max_points=1)


@pytest.mark.anyio
async def test_logs_follow_with_a_cursor_returns_only_new_lines_and_tail_and_stderr_work(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"sleep": 1.5, "err_lines": 2, "lines": 3}})
    submission = await start_run(session)
    prep_id = by_stage(submission["stages"])["prep"]["stage_run_id"]
    await wait_for_stage(session, prep_id, running)

    async def lines_with_a_tick() -> dict[str, Any] | None:
        chunk = await logs(session, prep_id, tail=5000)
        assert chunk["complete"] is False, "the stage finished before its logs were followed"
        return chunk if any("tick" in line for line in chunk["lines"]) else None

    first = await eventually(lines_with_a_tick)
    await wait_for_stage(session, prep_id, terminal)

    rest = await logs(session, prep_id, cursor=first["cursor"])

    everything = await logs(session, prep_id, tail=5000)
    assert rest["complete"] is True
    assert first["lines"] + rest["lines"] == everything["lines"]
    assert rest["lines"]
    assert not set(first["lines"]) & set(rest["lines"])
    assert everything["lines"][0] == "prep started"
    assert everything["lines"][-1] == "prep done"
    nothing_new = await logs(session, prep_id, cursor=rest["cursor"])
    assert nothing_new["lines"] == []
    tail = await logs(session, prep_id, tail=2)
    assert tail["lines"] == everything["lines"][-2:]
    stderr = await logs(session, prep_id, stream="stderr")
    assert stderr["lines"] == ["prep warning 0", "prep warning 1"]
    both = await logs(session, prep_id, stream="both", tail=5000)
    assert "[stderr] prep warning 1" in both["lines"]
    assert "[stdout] prep done" in both["lines"]
    await fail(session, "logs", "INVALID_ARGUMENT", run_id=prep_id, cursor="not-a-cursor")
    await wait_for_pipeline(session, submission["pipeline_run_id"])


# -- listing and concurrency -----------------------------------------------------------------


@pytest.mark.anyio
async def test_two_pipeline_runs_in_two_workspaces_at_once_both_complete(session: Client) -> None:
    first_slot = await workspace_in_slot(session, "alpha", "w1")
    second_slot = await workspace_in_slot(session, "beta", "w2")
    write_pipeline(first_slot, configs={"prep": {"sleep": 2.0}})
    write_pipeline(second_slot, configs={"prep": {"sleep": 2.0}})

    first = await start_run(session, workspace="w1")
    second = await start_run(session, workspace="w2")

    finals = [await wait_for_pipeline(session, s["pipeline_run_id"]) for s in (first, second)]

    assert [f["state"] for f in finals] == ["completed", "completed"]
    # Each first stage started before the other one finished: the two runs overlapped.
    one, other = (by_stage(f["stages"])["prep"] for f in finals)
    assert when(one["started_at"]) < when(other["finished_at"])
    assert when(other["started_at"]) < when(one["finished_at"])
    assert [f["workspace"] for f in finals] == ["alpha", "beta"]


@pytest.mark.anyio
async def test_list_runs_filters_by_workspace_stage_state_and_pipeline_run_and_pages_with_total(
    session: Client,
) -> None:
    first_slot = await workspace_in_slot(session, "alpha", "w1")
    second_slot = await workspace_in_slot(session, "beta", "w2")
    write_pipeline(first_slot, configs={"train": {"exit_code": 2}})
    write_pipeline(second_slot)
    failed = await run_to_end(session, workspace="w1")
    succeeded = await run_to_end(session, workspace="beta")

    everything = await ok(session, "list_runs", limit=200)
    in_alpha = await ok(session, "list_runs", workspace="alpha")
    by_slot = await ok(session, "list_runs", workspace="w2")
    trains = await ok(session, "list_runs", stage="train")
    failures = await ok(session, "list_runs", state="failed")
    skipped_in_beta = await ok(session, "list_runs", workspace="beta", state="skipped")
    of_run = await ok(session, "list_runs", pipeline_run_id=succeeded["pipeline_run_id"])
    page_one = await ok(session, "list_runs", limit=4, offset=0)
    page_two = await ok(session, "list_runs", limit=4, offset=4)

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
    await fail(session, "list_runs", "INVALID_ARGUMENT", limit=0)
    await fail(session, "list_runs", "WORKSPACE_NOT_FOUND", workspace="nobody")


# -- resources, arguments, dry runs ----------------------------------------------------------


@pytest.mark.anyio
async def test_run_resources_for_logs_and_manifest_read_a_finished_stage(session: Client) -> None:
    templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
    wanted = {"goldfish://runs/{run_id}/logs", "goldfish://runs/{run_id}/manifest"}
    if not wanted <= templates:
        pytest.skip(f"run resources are not registered yet (templates: {sorted(templates)})")
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"prep": {"lines": 2}})
    prep = by_stage((await run_to_end(session))["stages"])["prep"]["stage_run_id"]

    log_text = await session.read_resource(f"goldfish://runs/{prep}/logs")
    found = await session.read_resource(f"goldfish://runs/{prep}/manifest")

    log_body = "".join(getattr(c, "text", "") for c in log_text.contents)
    assert "prep line 1" in log_body
    manifest_body = json.loads("".join(getattr(c, "text", "") for c in found.contents))
    assert manifest_body["stage_run_id"] == prep
    assert manifest_body["outputs"] == (await manifest(session, prep))["outputs"]


@pytest.mark.anyio
async def test_run_without_results_spec_is_refused_with_a_structured_error_and_saves_nothing(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot)

    error = await fail(session, "run", "INVALID_ARGUMENT", workspace="w1", reason=LONG_REASON)

    assert "results_spec" in error["message"]
    assert error["details"]["field"] == "results_spec"
    assert "primary_metric" in error["remedy"]
    bad_spec = await fail(
        session,
        "run",
        "INVALID_ARGUMENT",
        workspace="w1",
        reason=LONG_REASON,
        results_spec={"primary_metric": "loss", "direction": "sideways"},
    )
    assert "direction" in bad_spec["message"]
    assert await version_names(session, "alpha") == []
    assert (await ok(session, "list_runs"))["total"] == 0


@pytest.mark.anyio
async def test_run_with_dry_run_returns_the_plan_and_creates_no_version_or_run(session: Client) -> None:
    slot = await workspace_in_slot(session, "alpha")
    write_pipeline(slot, configs={"train": {"value": 7, "compute": {"timeout_seconds": 90}}})

    plan = await start_run(session, dry_run=True, results_spec=None)

    assert plan["dry_run"] is True
    assert plan["state"] == "dry_run"
    assert (plan["pipeline_run_id"], plan["version"], plan["version_created"]) == (None, None, False)
    stages = by_stage(plan["stages"])
    assert list(stages) == ["prep", "train", "evaluate"]
    assert stages["train"]["config"] == {"value": 7}
    assert stages["train"]["timeout_seconds"] == 90
    assert {s["backend"] for s in plan["stages"]} == {"process"}
    assert await version_names(session, "alpha") == []
    assert (await ok(session, "list_runs"))["total"] == 0
