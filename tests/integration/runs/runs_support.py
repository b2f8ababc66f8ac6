"""The tool calls and readings the pipeline-run tests repeat (inspect, versions, logs, waits)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from mcp import Client

from tests.integration.pipeline_fixtures import (
    ok,
    start_run,
    wait_for_pipeline,
)

HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
