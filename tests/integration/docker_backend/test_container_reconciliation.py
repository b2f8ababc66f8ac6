"""A driver that died between starting a container and recording it is reconciled by label."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.context import ServerContext
from tests.docker_support import stage_containers
from tests.integration.docker_backend.backend_support import DOCKER_RUN_TIMEOUT, ONE_STAGE, stdout_of
from tests.integration.pipeline_fixtures import (
    database,
    ok,
    start_run,
    wait_for_pipeline,
    wait_for_stage,
    wait_until,
    workspace_in_slot,
    write_pipeline,
)

# -- reconciliation ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_driver_when_it_died_before_recording_the_container_is_replaced_and_the_container_adopted(
    dsession: Client, docker_root: Path, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE, configs={"prep": {"sleep": 3}})
    submission = await start_run(dsession)
    run_id, prep_id = submission["pipeline_run_id"], submission["stages"][0]["stage_run_id"]
    await wait_for_stage(
        dsession, prep_id, lambda run: run["status"] == "running", timeout=DOCKER_RUN_TIMEOUT
    )
    (container,) = stage_containers(engine, docker_root, prep_id)
    # Kill the driver, then make the database look as if it died between starting the container
    # and recording its handle (the crash point of quality.md), with its lease expired.
    with contextlib.closing(database(docker_root)) as conn:
        driver = int(
            conn.execute("SELECT driver_pid FROM pipeline_runs WHERE id = ?", (run_id,)).fetchone()[0]
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver, signal.SIGKILL)
        wait_until(lambda: not _alive(driver), 10, "the driver to die")
        conn.execute(
            "UPDATE stage_runs SET state = 'launching', backend_handle = NULL WHERE id = ?", (prep_id,)
        )
        conn.execute("UPDATE stage_attempts SET backend_handle = NULL WHERE stage_run_id = ?", (prep_id,))
        conn.execute("UPDATE pipeline_runs SET lease_expires_at = 0 WHERE id = ?", (run_id,))

    context = ServerContext.open(docker_root)  # a restarted server
    try:
        context.startup()
    finally:
        context.close()
    final = await wait_for_pipeline(dsession, run_id, timeout=DOCKER_RUN_TIMEOUT)

    assert final["state"] == "completed", final
    detail = await ok(dsession, "inspect_run", run_id=prep_id, include=["attempts"])
    assert detail["inspect"]["backend_handle"]["container_id"] == container.id
    events = [t["event"] for t in detail["inspect"]["transitions"]]
    assert "adopted" in events
    assert "prep done" in await stdout_of(dsession, prep_id)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
