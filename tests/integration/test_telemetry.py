"""Telemetry while a stage runs (process backend, fake nvidia-smi with two GPUs): ``sys/*`` metrics
in get_metrics, plot_metrics and compare_runs, bounded per series, and a failing sampler that
stops quietly without failing the stage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client

from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON
from tests.fakes.nvidia_smi import default_gpus, write_state
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    by_stage,
    ok,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)
from tests.integration.test_local_gpus import fake_gpus  # noqa: F401 - the fixture

ONE_STAGE = """\
name: busy
stages:
  - name: train
    outputs:
      out: {type: file}
"""
BUSY = """\
import time
from pathlib import Path

from goldfish.io import get_config, get_output_path, log_metric

deadline = time.monotonic() + float(get_config()["seconds"])
blob = bytearray(30 * 1024 * 1024)  # resident memory the sampler must see
step = 0
while time.monotonic() < deadline:
    sum(range(20000))
    step += 1
log_metric("loss", 0.5, step=1)
Path(get_output_path("out")).write_text(str(len(blob)))
"""


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


def configure(root: Path, interval: float, max_points: int) -> None:
    config = root / "goldfish.yaml"
    data = load_yaml(config.read_text(encoding="utf-8"), "goldfish.yaml").data
    data.setdefault("defaults", {}).update(telemetry_interval=interval, telemetry_max_points=max_points)
    data["gpu_check"] = {"min_free_memory_mb": 100, "timeout_seconds": 1}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
async def session(project_root: Path, fake_gpus: Path) -> AsyncIterator[Client]:  # noqa: F811
    configure(project_root, 0.1, 2000)
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client


async def start_busy(client: Client, seconds: float, gpus: int = 1) -> str:
    """Start the busy stage; its pipeline run id."""
    slot = Path((await ok(client, "status"))["slots"][0]["path"])
    (slot / "pipeline.yaml").write_text(ONE_STAGE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "train.py").write_text(BUSY, encoding="utf-8")
    write_configs(slot, {"train": {"seconds": seconds, "compute": {"gpus": gpus}}})
    result = await ok(
        client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC, use_cache=False
    )
    pipeline_run_id: str = result["run"]["pipeline_run_id"]
    return pipeline_run_id


async def busy_run(client: Client, seconds: float, gpus: int = 1) -> dict[str, Any]:
    final = await wait_for_pipeline(client, await start_busy(client, seconds, gpus))
    stage: dict[str, Any] = by_stage(final["stages"])["train"]
    assert stage["status"] == "completed", stage
    return stage


async def series_names(client: Client, run_id: str) -> dict[str, dict[str, Any]]:
    metrics = await ok(client, "get_metrics", run_id=run_id, summary_only=True)
    return {m["name"]: m for m in metrics["metrics"]}


@pytest.mark.anyio
async def test_a_gpu_stage_records_gpu_cpu_and_memory_telemetry_shown_by_metrics_plot_and_compare(
    session: Client,
) -> None:
    await workspace_in_slot(session, "telem")
    first = await busy_run(session, 1.5)
    second = await busy_run(session, 1.5)

    found = await series_names(session, first["stage_run_id"])
    wanted = {"sys/gpu0/util", "sys/gpu0/mem_mb", "sys/gpu0/temp_c", "sys/cpu_pct", "sys/rss_mb", "loss"}
    assert wanted <= set(found), sorted(found)
    assert "sys/gpu1/util" not in found  # only the stage's own GPU
    assert found["sys/gpu0/temp_c"]["last"] == 31.0
    assert found["sys/rss_mb"]["max"] >= 30
    assert found["sys/cpu_pct"]["max"] > 10
    plot = await ok(session, "plot_metrics", run_ids=[first["stage_run_id"]], metric="sys/rss_mb")
    assert plot["plot"]["runs"][0]["count"] == found["sys/rss_mb"]["count"]
    compared = await ok(session, "compare_runs", run_a=first["stage_run_id"], run_b=second["stage_run_id"])
    assert "sys/gpu0/util" in json.dumps(compared)


@pytest.mark.anyio
async def test_telemetry_when_the_stage_outlasts_the_budget_keeps_each_series_within_max_points(
    project_root: Path,
    fake_gpus: Path,  # noqa: F811
) -> None:
    configure(project_root, 0.02, 10)
    async with Client(server_for(project_root), mode="legacy") as client:
        await workspace_in_slot(client, "telem")
        stage = await busy_run(client, 2.0)
        found = await series_names(client, stage["stage_run_id"])

    # Half the budget at the set interval, then ever sparser, never past the cap.
    assert 5 <= found["sys/rss_mb"]["count"] <= 10
    assert 5 <= found["sys/gpu0/util"]["count"] <= 10


@pytest.mark.anyio
async def test_telemetry_when_nvidia_smi_fails_stops_gpu_sampling_once_and_the_stage_still_completes(
    session: Client,
    fake_gpus: Path,  # noqa: F811
) -> None:
    await workspace_in_slot(session, "telem")
    pipeline_run_id = await start_busy(session, 3.0)
    with anyio.fail_after(30):
        while True:  # the GPU has been sampled at least once: then the driver "fails"
            stages = (await ok(session, "inspect_run", run_id=pipeline_run_id))["inspect"]["pipeline_run"][
                "stages"
            ]
            run_id = stages[0]["stage_run_id"]
            if "sys/gpu0/util" in await series_names(session, run_id):
                break
            await anyio.sleep(0.05)
    write_state(fake_gpus, default_gpus(), fail=True)

    stage = by_stage((await wait_for_pipeline(session, pipeline_run_id))["stages"])["train"]

    assert stage["status"] == "completed", stage
    found = await series_names(session, stage["stage_run_id"])
    assert found["sys/rss_mb"]["count"] > found["sys/gpu0/util"]["count"]  # CPU/memory went on
    err = await ok(session, "logs", run_id=stage["stage_run_id"], stream="stderr", tail=50)
    stopped = [line for line in err["logs"]["lines"] if "GPU telemetry stopped" in line]
    assert len(stopped) == 1 and "nvidia-smi exited 9" in stopped[0], err
