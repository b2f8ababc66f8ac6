"""Runs outlive the agent's session, the server and even their driver.

- A stdio server started as a subprocess launches a pipeline; the client disconnects (the
  server process ends) and the pipeline still advances and is collected with nobody
  connected. A new session later finds every stage completed.
- The detached driver is killed while a stage runs; a new ServerContext's ``startup()``
  leaves the run alone while the dead driver's lease is live and starts a new driver once it
  has expired (expiry is simulated by moving ``lease_expires_at`` into the past: the lease
  length is not a setting), and the run completes.
- With the driver dead, the stage process keeps running and its wrapper leaves the exit code
  in ``logs/exit_code.txt``, where the next driver picks it up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from goldfish.context import ServerContext
from goldfish.server.app import server_for
from tests.integration.pipeline_fixtures import (
    by_stage,
    database,
    ok,
    process_alive,
    start_run,
    wait_until,
    workspace_in_slot,
    write_pipeline,
)

SERVER_START_TIMEOUT = 60.0
PIPELINE_TIMEOUT = 40.0


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


def stdio_server(root: Path) -> StdioServerParameters:
    """``goldfish serve`` for ``root`` as a stdio subprocess."""
    return StdioServerParameters(
        command=sys.executable, args=["-m", "goldfish.cli", "serve", "--project", str(root)], cwd=str(root)
    )


def pipeline_row(root: Path, pipeline_run_id: str) -> sqlite3.Row:
    """The pipeline run as stored (read straight from SQLite, not through a server)."""
    with contextlib.closing(database(root)) as conn:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM pipeline_runs WHERE id = ?", (pipeline_run_id,)
        ).fetchone()
    assert row is not None
    return row


def stage_row(root: Path, stage_run_id: str) -> sqlite3.Row:
    """A stage run as stored."""
    with contextlib.closing(database(root)) as conn:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM stage_runs WHERE id = ?", (stage_run_id,)
        ).fetchone()
    assert row is not None
    return row


def expire_lease(root: Path, pipeline_run_id: str) -> None:
    """Make the current lease of a pipeline run look expired (as it would be ~15 s later)."""
    with contextlib.closing(database(root)) as conn:
        conn.execute(
            "UPDATE pipeline_runs SET lease_expires_at = ? WHERE id = ?", (time.time() - 1, pipeline_run_id)
        )


def kill_driver(pid: int) -> None:
    """SIGKILL the detached driver (no cleanup runs) and reap it if it is our child."""
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    wait_until(lambda: not process_alive(pid), 10, f"driver {pid} to die")


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def started_with_a_live_driver(
    root: Path, configs: dict[str, dict[str, Any]]
) -> tuple[dict[str, str], str, int]:
    """Start the three-stage pipeline in-process; return stage ids, pipeline id and driver pid
    once the detached driver holds the lease and ``train`` is running."""
    async with Client(server_for(root), mode="legacy") as session:
        slot = await workspace_in_slot(session, "alpha")
        write_pipeline(slot, configs=configs)
        submission = await start_run(session)
    stages = {s["stage"]: s["stage_run_id"] for s in submission["stages"]}
    pipeline_run_id: str = submission["pipeline_run_id"]
    wait_until(
        lambda: stage_row(root, stages["train"])["state"] == "running", PIPELINE_TIMEOUT, "train to run"
    )
    row = pipeline_row(root, pipeline_run_id)
    assert row["lease_owner"] is not None
    assert row["driver_pid"] > 0
    assert process_alive(row["driver_pid"])
    return stages, pipeline_run_id, int(row["driver_pid"])


def stage_pid(root: Path, stage_run_id: str) -> tuple[int, Path]:
    """Pid of a launched stage's process group and its logs folder."""
    handle = json.loads(stage_row(root, stage_run_id)["backend_handle"])
    return int(handle["pid"]), Path(handle["logs_dir"])


# -- (a) the agent disconnects ---------------------------------------------------------------


@pytest.mark.anyio
async def test_pipeline_when_the_stdio_client_disconnects_after_the_first_stage_still_completes(
    project_root: Path,
) -> None:
    configs = {"train": {"sleep": 1.5}, "evaluate": {"sleep": 1.0}}
    with anyio.fail_after(SERVER_START_TIMEOUT):
        async with Client(stdio_server(project_root), mode="legacy") as client:
            slot = await workspace_in_slot(client, "alpha")
            write_pipeline(slot, configs=configs)
            submission = await start_run(client)
            pipeline_run_id = submission["pipeline_run_id"]
            prep_id = by_stage(submission["stages"])["prep"]["stage_run_id"]
            deadline = time.monotonic() + PIPELINE_TIMEOUT
            while True:
                listed = await ok(client, "list_runs", pipeline_run_id=pipeline_run_id)
                states = {r["stage"]: r["status"] for r in listed["runs"]}
                if states["prep"] == "completed":
                    break
                assert time.monotonic() < deadline, states
                await anyio.sleep(0.05)
            assert states["evaluate"] == "pending"
    disconnected_at = time.time()

    # Nobody is connected: the pipeline must advance and be collected on its own.
    wait_until(
        lambda: pipeline_row(project_root, pipeline_run_id)["state"] != "running",
        PIPELINE_TIMEOUT,
        "the pipeline to finish with no session",
    )

    with anyio.fail_after(SERVER_START_TIMEOUT):
        async with Client(stdio_server(project_root), mode="legacy") as later:
            listed = await ok(later, "list_runs", pipeline_run_id=pipeline_run_id)
    runs = by_stage(listed["runs"])
    assert listed["total"] == 3
    assert {name: run["status"] for name, run in runs.items()} == {
        "prep": "completed",
        "train": "completed",
        "evaluate": "completed",
    }
    assert all(run["exit_code"] == 0 for run in runs.values())
    assert runs["prep"]["stage_run_id"] == prep_id
    for name in ("train", "evaluate"):
        assert when(runs[name]["finished_at"]).timestamp() > disconnected_at, name
    storage = project_root / ".goldfish" / "storage" / "runs"
    for name, signal_name in (("prep", "features"), ("train", "model"), ("evaluate", "report")):
        stored = storage / runs[name]["stage_run_id"] / "outputs" / signal_name
        assert stored.is_dir(), stored
        assert any(stored.iterdir()), stored
        assert (storage / runs[name]["stage_run_id"] / "logs" / "stdout.log").is_file()
    assert pipeline_row(project_root, pipeline_run_id)["state"] == "completed"


# -- (b) the driver dies, a restarted server takes over --------------------------------------


@pytest.mark.anyio
async def test_startup_after_the_driver_is_killed_waits_for_its_lease_then_a_new_driver_finishes(
    project_root: Path,
) -> None:
    stages, pipeline_run_id, old_pid = await started_with_a_live_driver(
        project_root, {"train": {"sleep": 3.0}}
    )
    train_pid, _ = stage_pid(project_root, stages["train"])
    old_owner = pipeline_row(project_root, pipeline_run_id)["lease_owner"]

    kill_driver(old_pid)

    assert process_alive(train_pid), "the stage must outlive its driver"
    restarted = ServerContext.open(project_root)
    try:
        # The dead driver's lease is still live: a restarted server leaves the run alone.
        restarted.startup()
        row = pipeline_row(project_root, pipeline_run_id)
        assert (row["lease_owner"], row["driver_pid"]) == (old_owner, old_pid)

        expire_lease(project_root, pipeline_run_id)
        restarted.startup()

        wait_until(
            lambda: pipeline_row(project_root, pipeline_run_id)["driver_pid"] not in (old_pid, 0),
            PIPELINE_TIMEOUT,
            "a new driver to take the lease",
        )
        new_row = pipeline_row(project_root, pipeline_run_id)
        assert new_row["lease_owner"] != old_owner
        assert stage_row(project_root, stages["train"])["state"] == "running"
        wait_until(
            lambda: pipeline_row(project_root, pipeline_run_id)["state"] != "running",
            PIPELINE_TIMEOUT,
            "the new driver to finish the pipeline",
        )
        final = restarted.run_queries.pipeline_info(restarted.run_queries.pipeline_run(pipeline_run_id))
    finally:
        restarted.close()
    assert final.state == "completed"
    assert [(s.stage, s.status, s.exit_code) for s in final.stages] == [
        ("prep", "completed", 0),
        ("train", "completed", 0),
        ("evaluate", "completed", 0),
    ]
    assert final.stages[1].stage_run_id == stages["train"]
    assert final.stages[1].attempt == 1
    assert not process_alive(train_pid)


# -- (c) the stage outlives its driver and records its exit code -----------------------------


@pytest.mark.anyio
async def test_stage_when_its_driver_is_killed_keeps_running_and_writes_its_exit_code(
    project_root: Path,
) -> None:
    stages, pipeline_run_id, driver_pid = await started_with_a_live_driver(
        project_root, {"train": {"sleep": 1.0}}
    )
    train_pid, logs_dir = stage_pid(project_root, stages["train"])

    kill_driver(driver_pid)

    assert process_alive(train_pid)
    exit_file = logs_dir / "exit_code.txt"
    wait_until(exit_file.is_file, PIPELINE_TIMEOUT, "the stage to record its exit code")
    wait_until(lambda: not process_alive(train_pid), 10, "the stage process to end")
    assert exit_file.read_text(encoding="utf-8").strip() == "0"
    assert "train done" in (logs_dir / "stdout.log").read_text(encoding="utf-8")
    # Nobody collected it yet: the database still has it running.
    assert stage_row(project_root, stages["train"])["state"] == "running"

    expire_lease(project_root, pipeline_run_id)
    restarted = ServerContext.open(project_root)
    try:
        restarted.startup()
        wait_until(
            lambda: pipeline_row(project_root, pipeline_run_id)["state"] != "running",
            PIPELINE_TIMEOUT,
            "a new driver to collect the finished stage",
        )
    finally:
        restarted.close()
    train = stage_row(project_root, stages["train"])
    assert (train["state"], train["exit_code"]) == ("completed", 0)
    assert pipeline_row(project_root, pipeline_run_id)["state"] == "completed"
    stored = project_root / ".goldfish" / "storage" / "runs" / stages["train"] / "logs" / "exit_code.txt"
    assert stored.read_text(encoding="utf-8").strip() == "0"
