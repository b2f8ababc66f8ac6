"""Failure patterns through a real MCP session: a repeated failure is noticed, and so is its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    by_stage,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("reaping_stray_processes")]

PIPELINE = "stages:\n  - name: train\n    outputs:\n      model: {type: file}\n"
BROKEN = """\
from goldfish.io import get_config, get_output_path


def fit(lr):
    if lr > 0.05:
        raise ValueError(f"learning rate {lr} is too high")
    get_output_path("model").write_text(str(lr))


fit(get_config()["lr"])
"""


async def run_with(client: Client, slot: Path, lr: float) -> dict[str, object]:
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "train.py").write_text(BROKEN, encoding="utf-8")
    (slot / "configs").mkdir(exist_ok=True)
    (slot / "configs" / "train.yaml").write_text(f"lr: {lr}\n", encoding="utf-8")
    submission = await start_run(client)
    info = await wait_for_pipeline(client, submission["pipeline_run_id"])
    return by_stage(info["stages"])["train"]


async def test_repeated_failure_is_one_pattern_with_its_versions_and_the_version_that_fixed_it(
    project_root: Path,
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "patterns")
        first = await run_with(client, slot, 0.5)
        second = await run_with(client, slot, 0.9)
        assert first["status"] == second["status"] == "failed"
        alerts = (await ok(client, "dashboard"))["dashboard"]["alerts"]
        [alert] = [a for a in alerts if second["stage_run_id"] in a["message"] and a["kind"] == "failed_run"]
        assert "this failure has happened 2 times" in alert["message"], alert
        [earlier] = [a for a in alerts if first["stage_run_id"] in a["message"] and a["kind"] == "failed_run"]
        assert "this failure has happened" not in earlier["message"]  # the first time it was new

        fixed = await run_with(client, slot, 0.01)
        assert fixed["status"] == "completed"
        listed = (await ok(client, "manage_patterns", action="list"))["patterns"]
        [pattern] = listed["patterns"]
        assert pattern["error_type"] == "ValueError" and pattern["frame"] == "train.py:fit"
        assert pattern["message"] == "learning rate <n> is too high"
        assert pattern["occurrences"] == 2 and pattern["versions"] == ["patterns v1", "patterns v2"]
        assert pattern["fixed_in"] == "patterns v3" and pattern["fixed_by_run_id"] == fixed["stage_run_id"]

        pattern_id = pattern["pattern_id"]
        await fail(client, "manage_patterns", "REASON_REQUIRED", action="approve", pattern_id=pattern_id)
        approved = await ok(
            client, "manage_patterns", action="approve", pattern_id=pattern_id, reason=LONG_REASON
        )
        assert approved["patterns"]["patterns"][0]["status"] == "approved"
        await ok(client, "manage_patterns", action="delete", pattern_id=pattern_id, reason=LONG_REASON)
        assert (await ok(client, "manage_patterns", action="list"))["patterns"]["total"] == 0
        await fail(
            client,
            "manage_patterns",
            "PATTERN_NOT_FOUND",
            action="reject",
            pattern_id=pattern_id,
            reason=LONG_REASON,
        )
