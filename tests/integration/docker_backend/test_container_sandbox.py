"""The container sandbox meets a stage that writes to an input, forks too much, overruns or is canceled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.docker_support import containers_removed_at_exit, stage_containers
from tests.integration.docker_backend.backend_support import (
    DOCKER_RUN_TIMEOUT,
    FORK_BOMB,
    ONE_STAGE,
    TAMPER,
    TAMPER_PIPELINE,
    docker_project,
    run_and_wait,
    stderr_of,
    stdout_of,
)
from tests.integration.pipeline_fixtures import (
    by_stage,
    eventually,
    ok,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    workspace_in_slot,
    write_pipeline,
)

# -- the sandbox -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stage_when_it_writes_to_an_input_is_refused_and_runs_as_non_root_on_container_paths(
    dsession: Client,
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, TAMPER_PIPELINE)
    (slot / "modules" / "tamper.py").write_text(TAMPER, encoding="utf-8")

    final = await run_and_wait(dsession)

    stages = by_stage(final["stages"])
    assert stages["prep"]["status"] == "completed"
    tamper = stages["tamper"]
    assert (tamper["status"], tamper["failure_kind"], tamper["exit_code"]) == ("failed", "stage_error", 3)
    assert "write refused: Read-only file system" in await stderr_of(dsession, tamper["stage_run_id"])
    out = await stdout_of(dsession, tamper["stage_run_id"])
    assert "inputs=/mnt/inputs cwd=/mnt/work" in out
    uid = int(out.split("uid=")[1].split()[0])
    assert uid != 0
    # The producer's stored output is intact: same content hash as recorded.
    prep = await ok(dsession, "inspect_run", run_id=stages["prep"]["stage_run_id"], include=["manifest"])
    (output,) = prep["inspect"]["manifest"]["outputs"]
    tampered = await ok(dsession, "inspect_run", run_id=tamper["stage_run_id"], include=["manifest"])
    (seen,) = tampered["inspect"]["manifest"]["inputs"]
    assert seen["content_hash"] == output["content_hash"]
    stored = Path(output["uri"].removeprefix("file://")) / "data.npy"
    assert stored.read_bytes() != b"overwritten"


@pytest.mark.anyio
async def test_stage_when_it_forks_past_the_pids_limit_cannot_start_more_processes(
    tmp_path: Path, engine: Any
) -> None:
    root = docker_project(tmp_path, "pidsproj", "docker:\n  pids_limit: 32\n")
    with reaped_at_exit(root), containers_removed_at_exit(engine, root):
        async with Client(server_for(root), mode="legacy") as client:
            slot = await workspace_in_slot(client, "alpha")
            write_pipeline(slot, ONE_STAGE)
            (slot / "modules" / "prep.py").write_text(FORK_BOMB, encoding="utf-8")

            final = await run_and_wait(client)

            (prep,) = final["stages"]
            assert (prep["status"], prep["exit_code"]) == ("failed", 5), prep
            message = await stderr_of(client, prep["stage_run_id"])
            count = int(message.split("pids limit hit after ")[1].split()[0])
            assert 0 < count < 32
            assert stage_containers(engine, root, prep["stage_run_id"]) == []


@pytest.mark.anyio
async def test_stage_when_it_exceeds_its_timeout_is_timed_out_and_its_container_removed(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 60, "compute": {"timeout_seconds": 2}}})

    final = await run_and_wait(dsession)

    (prep,) = final["stages"]
    assert prep["status"] == "timed_out"
    assert "timeout of 2s" in prep["error"]
    assert stage_containers(engine, docker_root, prep["stage_run_id"]) == []


@pytest.mark.anyio
async def test_cancel_when_a_container_runs_stops_the_stage_and_removes_the_container(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 60, "obey_stop": True}})
    submission = await start_run(dsession)
    prep_id = submission["stages"][0]["stage_run_id"]
    await wait_for_stage(
        dsession, prep_id, lambda run: run["status"] == "running", timeout=DOCKER_RUN_TIMEOUT
    )
    await eventually(lambda: _has_line(dsession, prep_id, "prep tick 1"), timeout=DOCKER_RUN_TIMEOUT)
    assert len(stage_containers(engine, docker_root, prep_id)) == 1

    canceled = await ok(dsession, "cancel", run_id=prep_id, reason=LONG_REASON)

    assert canceled["cancel"]["run"]["status"] == "canceled"
    assert stage_containers(engine, docker_root, prep_id) == []
    final = await wait_for_pipeline(dsession, submission["pipeline_run_id"])
    assert final["state"] == "canceled"
    # The stop file reached the stage through its read-only control mount (or TERM did).
    assert "prep was asked to stop" in await stdout_of(dsession, prep_id)


async def _has_line(client: Client, run_id: str, line: str) -> bool:
    return line in await stdout_of(client, run_id)
