"""status() and STATE.md stay small however long the history is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from goldfish.context import ServerContext
from goldfish.ids import new_pipeline_run_id, new_record_id, new_stage_run_id
from goldfish.server.app import server_for
from goldfish.timeutil import now_iso
from tests.conftest import LONG_REASON, call

STATUS_BOUND_BYTES = 8 * 1024
LONG = "a very long explanation of what went wrong " * 20


def _fill_history(context: ServerContext, workspaces: int, runs_per_workspace: int) -> None:
    """Workspaces with versions, finished and failed runs with long errors, records and thoughts."""
    runs = context.runs
    for w in range(workspaces):
        ws = context.workspaces.create(f"ws{w:02d}", LONG[:300])
        row = context.core.workspace(ws.name)
        with context.db.transaction() as conn:
            for number in range(1, 4):
                context.workspace_rows.insert_version(conn, row.id, number, "0" * 40, LONG, "save", 3)
            for r in range(runs_per_workspace):
                run_id, now = new_pipeline_run_id(), now_iso()
                state = "failed" if r % 3 == 0 else "completed"
                runs.insert_pipeline_run(
                    conn,
                    {
                        "id": run_id,
                        "workspace_id": row.id,
                        "workspace": ws.name,
                        "version_num": 3,
                        "state": state,
                        "reason": LONG,
                        "created_at": now,
                        "finished_at": now,
                    },
                )
                runs.insert_stage_run(
                    conn,
                    {
                        "id": new_stage_run_id(),
                        "pipeline_run_id": run_id,
                        "workspace": ws.name,
                        "version_num": 3,
                        "stage": "train",
                        "module": "train",
                        "position": 0,
                        "state": state,
                        "error": LONG if state == "failed" else None,
                        "backend": "process",
                        "timeout_seconds": 60,
                        "created_at": now,
                        "finished_at": now,
                    },
                )
                context.record_rows.insert(
                    conn,
                    {
                        "id": new_record_id(),
                        "workspace_id": row.id,
                        "workspace": ws.name,
                        "record_type": "run",
                        "pipeline_run_id": run_id,
                        "version_num": 3,
                        "reason": LONG,
                        "created_at": now,
                    },
                )
    for t in range(50):
        context.thoughts.log(f"thought {t}: {LONG}", None, None)


@pytest.mark.anyio
async def test_status_when_history_has_1000_runs_stays_under_8_kb(project_root: Path) -> None:
    context = ServerContext.open(project_root)
    try:
        _fill_history(context, workspaces=20, runs_per_workspace=50)
        context.workspaces.mount("ws00", "w1")
        context.state.write()
    finally:
        context.close()
    async with Client(server_for(project_root), mode="legacy") as client:
        status = await call(client, "status")
        dashboard = await call(client, "dashboard")
        await call(client, "log_thought", thought=LONG_REASON)

    size = len(json.dumps(status).encode())
    assert size < STATUS_BOUND_BYTES, f"status is {size} bytes"
    assert status["pending_finalizations_total"] == 1000
    assert len(status["pending_finalizations"]) == 5
    assert len((project_root / "STATE.md").read_text(encoding="utf-8")) <= 4000
    assert "list_unfinalized_runs" in status["state_md"]
    assert dashboard["dashboard"]["alerts"], "failed runs show up as alerts"
