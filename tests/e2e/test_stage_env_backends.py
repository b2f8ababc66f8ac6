"""Env, secrets and telemetry on docker and on the GCE simulator: the stage sees env and secret,
the value is stored nowhere, and sys/* telemetry comes back from inside the container.

The secret's value is looked for in every byte the project writes (database + WAL, dev repo
objects, storage, STATE.md), in every bucket object but the job-scoped ``secrets.json``, in
job.json and in what the fake Compute API was sent (instance metadata and labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from goldfish.secrets.store import SecretStore
from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.docker_support import containers_removed_at_exit, require_docker
from tests.e2e.gce_support import GceWorld, gce_config, run_to_end
from tests.fakes.fake_secret_manager import FakeSecretManager
from tests.integration.docker_backend.backend_support import docker_project
from tests.integration.pipeline_fixtures import (
    by_stage,
    ok,
    reaped_at_exit,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

SECRET = "tok-7d1c0ffee-e2e-VALUE"  # noqa: S105 - the value the scans look for
PIPELINE = """\
name: cloud
stages:
  - name: train
    outputs:
      model: {type: directory}
"""
MODULE = """\
import os
import time

from goldfish.io import get_output_path, log_metric

deadline = time.monotonic() + 1.5  # long enough for a few telemetry samples
while time.monotonic() < deadline:
    sum(range(10000))
token = os.environ["HF_TOKEN"]
print("token", token, "omp", os.environ.get("OMP_NUM_THREADS"), flush=True)
log_metric("len/" + token, float(len(token)))
(get_output_path("model") / "w.txt").write_text("weights")
"""


def write_stage(slot: Path, config: dict[str, Any]) -> None:
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "train.py").write_text(MODULE, encoding="utf-8")
    write_configs(slot, {"train": {"env": {"OMP_NUM_THREADS": "3"}, "secrets": ["HF_TOKEN"], **config}})


def fast_telemetry(root: Path) -> None:
    config = root / "goldfish.yaml"
    data = load_yaml(config.read_text(encoding="utf-8"), "goldfish.yaml").data
    data.setdefault("defaults", {})["telemetry_interval"] = 0.2
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def project_files_holding(root: Path, needle: bytes) -> list[str]:
    store = root / ".goldfish" / "secrets.env"
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and path != store and needle in path.read_bytes()
    ]


async def check_stage(client: Client, stage: dict[str, Any]) -> None:
    assert stage["status"] == "completed", stage
    out = await ok(client, "logs", run_id=stage["stage_run_id"], stream="stdout", tail=20)
    assert "token *** omp 3" in out["logs"]["lines"]
    metrics = await ok(client, "get_metrics", run_id=stage["stage_run_id"], summary_only=True)
    names = [m["name"] for m in metrics["metrics"]]
    assert "len/***" in names
    assert {"sys/cpu_pct", "sys/rss_mb"} <= set(names), names  # telemetry from inside the container


async def test_docker_stage_gets_env_and_secret_and_the_value_is_stored_nowhere(tmp_path: Path) -> None:
    engine = require_docker()
    root = docker_project(tmp_path, "dockerenv")
    fast_telemetry(root)
    SecretStore(root / ".goldfish").set("HF_TOKEN", SECRET)
    with reaped_at_exit(root), containers_removed_at_exit(engine, root):
        async with Client(server_for(root), mode="legacy") as client:
            write_stage(await workspace_in_slot(client, "w1"), {})
            submission = await start_run(client, "w1")
            final = await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=180)
            await check_stage(client, by_stage(final["stages"])["train"])
    assert project_files_holding(root, SECRET.encode()) == []


async def test_gce_stage_gets_env_and_secret_through_secrets_json_only(world: GceWorld) -> None:
    SecretStore(world.root / ".goldfish").set("HF_TOKEN", SECRET)
    fast_telemetry(world.root)
    async with Client(server_for(world.root), mode="legacy") as client:
        write_stage(await workspace_in_slot(client, "w1"), gce_config())
        final = await run_to_end(client, world)
        stage = by_stage(final["stages"])["train"]
        await check_stage(client, stage)

    job = world.job(stage["stage_run_id"])
    assert job["env"]["OMP_NUM_THREADS"] == "3" and "HF_TOKEN" not in job["env"]
    assert "HF_TOKEN" in job["docker_run"] and job["secrets_uri"].endswith("/secrets.json")
    storage = world.storage()
    holding = [key for key in storage.list_keys("") if SECRET.encode() in (storage.read_bytes(key) or b"")]
    assert holding == [f"runs/{stage['stage_run_id']}/secrets.json"]
    assert SECRET not in json.dumps(world.compute.inserts)
    assert project_files_holding(world.root, SECRET.encode()) == []


async def test_gce_stage_with_secret_manager_on_gets_a_secret_only_secret_manager_holds(
    world: GceWorld,
) -> None:
    fake = FakeSecretManager(world.compute.project)
    fake.secrets["HF_TOKEN"] = SECRET
    fake.start()
    try:
        config = world.root / "goldfish.yaml"
        data = load_yaml(config.read_text(encoding="utf-8"), "goldfish.yaml").data
        data["gce"].update(secret_manager=True, secret_manager_endpoint=fake.endpoint)
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        fast_telemetry(world.root)
        async with Client(server_for(world.root), mode="legacy") as client:
            write_stage(await workspace_in_slot(client, "w1"), gce_config())
            final = await run_to_end(client, world)
            stage = by_stage(final["stages"])["train"]
            await check_stage(client, stage)
            listed = await ok(client, "list_secrets")
    finally:
        fake.stop()

    assert {"name": "HF_TOKEN", "set_in": ["Secret Manager"], "used_by": ["w1:train"]} in listed["secrets"]
    assert project_files_holding(world.root, SECRET.encode()) == []
