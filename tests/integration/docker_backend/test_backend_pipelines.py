"""The docker backend through real MCP sessions: the same pipeline on both backends, the demo, ``auto``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON
from tests.docker_support import containers_removed_at_exit, require_docker, stage_containers
from tests.integration.docker_backend.backend_support import REPO, docker_project, run_and_wait, stdout_of
from tests.integration.pipeline_fixtures import (
    by_stage,
    ok,
    reaped_at_exit,
    workspace_in_slot,
    write_pipeline,
)

# -- the same pipeline on both backends ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["process", "docker"])
async def test_three_stage_pipeline_when_run_on_each_backend_completes_with_hashed_lineage(
    backend: str, tmp_path: Path
) -> None:
    client_engine = require_docker() if backend == "docker" else None
    root = docker_project(tmp_path, f"{backend}proj", backend=backend)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(reaped_at_exit(root))
        if client_engine is not None:
            cleanup.enter_context(containers_removed_at_exit(client_engine, root))
        async with Client(server_for(root), mode="legacy") as client:
            slot = await workspace_in_slot(client, "alpha")
            write_pipeline(slot, configs={"prep": {"lines": 3, "metrics": 4}})

            final = await run_and_wait(client)

            assert final["state"] == "completed", final
            stages = by_stage(final["stages"])
            assert list(stages) == ["prep", "train", "evaluate"]
            for stage in stages.values():
                assert (stage["status"], stage["exit_code"], stage["backend"]) == ("completed", 0, backend)
            prep = stages["prep"]["stage_run_id"]
            assert "prep line 2" in await stdout_of(client, prep)
            metrics = await ok(client, "get_metrics", run_id=prep, names=["loss"])
            assert metrics["metrics"][0]["count"] == 4
            detail = await ok(client, "inspect_run", run_id=prep, include=["manifest"])
            assert detail["inspect"]["run"]["backend"] == backend
            assert ("container_id" in detail["inspect"]["backend_handle"]) is (backend == "docker")
            train = await ok(
                client, "inspect_run", run_id=stages["train"]["stage_run_id"], include=["manifest"]
            )
            (features,) = train["inspect"]["manifest"]["inputs"]
            (produced,) = detail["inspect"]["manifest"]["outputs"]
            assert features["content_hash"] == produced["content_hash"]
            assert features["producer_run_id"] == prep
        if client_engine is not None:
            assert stage_containers(client_engine, root, prep) == []  # removed after collection


# -- the demo -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_demo_pipeline_when_run_on_docker_trains_and_evaluates_in_containers(
    dsession: Client, docker_root: Path
) -> None:
    demo = REPO / "pipelines" / "demo"
    data = docker_root / "data" / "demo_blobs"
    subprocess.run([sys.executable, str(demo / "make_data.py"), str(data)], check=True, capture_output=True)
    await ok(
        dsession,
        "register_source",
        name="demo_blobs",
        uri="data/demo_blobs",
        description="the demo dataset",
        reason=LONG_REASON,
    )
    slot = await workspace_in_slot(dsession, "blobs")
    for name in ("pipeline.yaml", "modules", "configs"):
        source = demo / name
        if source.is_dir():
            shutil.copytree(source, slot / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (slot / name).write_bytes(source.read_bytes())
    spec = load_yaml((demo / "results_spec.yaml").read_text(encoding="utf-8"), "results_spec.yaml").data

    final = await run_and_wait(dsession, results_spec=spec)

    assert final["state"] == "completed", [(s["stage"], s["status"], s["error"]) for s in final["stages"]]
    stages = by_stage(final["stages"])
    assert [s["backend"] for s in stages.values()] == ["docker"] * 3
    metrics = await ok(dsession, "get_metrics", run_id=stages["train"]["stage_run_id"], summary_only=True)
    names = {m["name"] for m in metrics["metrics"]}
    assert "val_acc" in names, names


@pytest.mark.anyio
async def test_auto_backend_when_the_engine_has_the_base_image_plans_stages_on_docker(
    tmp_path: Path, engine: Any
) -> None:
    root = docker_project(tmp_path, "autoproj", backend="auto")
    async with Client(server_for(root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "alpha")
        write_pipeline(slot, configs={"train": {"compute": {"backend": "process"}}})

        planned = await ok(client, "run", workspace="w1", reason=LONG_REASON, dry_run=True)

    backends = {stage["stage"]: stage["backend"] for stage in planned["run"]["stages"]}
    assert backends == {"prep": "docker", "train": "process", "evaluate": "docker"}
