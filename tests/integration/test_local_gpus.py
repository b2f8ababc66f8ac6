"""Local GPUs with a fake ``nvidia-smi`` (two GPUs): discovery, whole GPUs per stage, queueing,
``GPU_UNAVAILABLE``, readiness, and the docker device request as the engine records it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from goldfish.backends.container import container_invocation
from goldfish.backends.docker.backend import sdk_create_arguments, stage_limits
from goldfish.backends.gpus import GpuNotReadyError, discover, wait_ready
from goldfish.config import Docker
from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON
from tests.fakes.nvidia_smi import default_gpus, install_fake_nvidia_smi, write_state
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    by_stage,
    fail,
    ok,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)

PARALLEL = """\
name: gpus
stages:
  - name: left
    outputs:
      out: {type: file}
  - name: right
    outputs:
      out: {type: file}
"""
GPU_MODULE = """\
import os
import time
from pathlib import Path

from goldfish.io import get_config, get_output_path

env = os.environ
print("visible", repr(env.get("CUDA_VISIBLE_DEVICES")), env.get("CUDA_DEVICE_ORDER"), flush=True)
print("start", time.time(), flush=True)
time.sleep(float(get_config().get("sleep", 0)))
print("end", time.time(), flush=True)
Path(get_output_path("out")).write_text("ok")
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nvidia-smi with two idle GPUs on PATH; returns its state file."""
    state = tmp_path / "gpu-state.json"
    install_fake_nvidia_smi(tmp_path / "fakebin", state)
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakebin'}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_NVIDIA_SMI_STATE", str(state))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return state


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


@pytest.fixture
async def session(project_root: Path, fake_gpus: Path) -> AsyncIterator[Client]:
    config = project_root / "goldfish.yaml"
    data = load_yaml(config.read_text(encoding="utf-8"), "goldfish.yaml").data
    data["gpu_check"] = {"min_free_memory_mb": 1000, "timeout_seconds": 1}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client


def write_gpu_stages(slot: Path, left: dict[str, Any], right: dict[str, Any]) -> None:
    (slot / "pipeline.yaml").write_text(PARALLEL, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    for name in ("left", "right"):
        (slot / "modules" / f"{name}.py").write_text(GPU_MODULE, encoding="utf-8")
    write_configs(slot, {"left": left, "right": right})


async def stdout_of(client: Client, stage: dict[str, Any]) -> dict[str, str]:
    out = await ok(client, "logs", run_id=stage["stage_run_id"], stream="stdout", tail=20)
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out["logs"]["lines"]}


async def run_gpu_pipeline(client: Client) -> dict[str, dict[str, Any]]:
    result = await ok(client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC)
    final = await wait_for_pipeline(client, result["run"]["pipeline_run_id"])
    return by_stage(final["stages"])


# -- discovery -------------------------------------------------------------------------------


def test_discover_with_the_fake_finds_two_gpus_and_cuda_visible_devices_narrows_them(fake_gpus: Path) -> None:
    assert discover({}).devices == [0, 1]
    assert discover({"CUDA_VISIBLE_DEVICES": "1"}).devices == [1]
    assert discover({"CUDA_VISIBLE_DEVICES": "GPU-fake-0001,0"}).devices == [1, 0]
    assert discover({"CUDA_VISIBLE_DEVICES": ""}).devices == []


def test_discover_without_nvidia_smi_takes_cuda_visible_devices_or_finds_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert discover({"CUDA_VISIBLE_DEVICES": "0,1"}).devices == [0, 1]
    none = discover({})
    assert none.devices == [] and none.problem is not None and "nvidia-smi" in none.problem


def test_readiness_when_memory_is_busy_waits_then_fails_saying_what_it_saw(fake_gpus: Path) -> None:
    gpus = default_gpus()
    gpus[1]["memory.used"] = 81000
    write_state(fake_gpus, gpus)

    assert "GPU 0: 81559 MB free" in wait_ready([0], 1000, 0)
    with pytest.raises(GpuNotReadyError) as raised:
        wait_ready([0, 1], 1000, 0.1)
    assert "GPU 1: 559 MB free" in raised.value.message


# -- scheduling on the process backend -------------------------------------------------------


@pytest.mark.anyio
async def test_two_stages_with_one_gpu_each_run_at_once_on_different_gpus(session: Client) -> None:
    slot = await workspace_in_slot(session, "gpuws")
    write_gpu_stages(slot, {"compute": {"gpus": 1}, "sleep": 1}, {"compute": {"gpus": 1}, "sleep": 1})

    stages = await run_gpu_pipeline(session)

    seen = {name: await stdout_of(session, stage) for name, stage in stages.items()}
    assert {stage["status"] for stage in stages.values()} == {"completed"}, stages
    assert {seen["left"]["visible"], seen["right"]["visible"]} == {"'0' PCI_BUS_ID", "'1' PCI_BUS_ID"}
    # They overlapped: each started before the other ended.
    assert float(seen["left"]["start"]) < float(seen["right"]["end"])
    assert float(seen["right"]["start"]) < float(seen["left"]["end"])
    found = await ok(session, "inspect_run", run_id=stages["left"]["stage_run_id"], include=["manifest"])
    assert found["inspect"]["manifest"]["gpus"] == 1


@pytest.mark.anyio
async def test_two_stages_needing_both_gpus_run_one_after_the_other(session: Client) -> None:
    slot = await workspace_in_slot(session, "gpuws")
    write_gpu_stages(slot, {"compute": {"gpus": 2}, "sleep": 0.5}, {"compute": {"gpus": 2}, "sleep": 0.5})

    stages = await run_gpu_pipeline(session)

    seen = {name: await stdout_of(session, stage) for name, stage in stages.items()}
    assert {stage["status"] for stage in stages.values()} == {"completed"}, stages
    assert seen["left"]["visible"] == seen["right"]["visible"] == "'0,1' PCI_BUS_ID"
    first, second = sorted(seen.values(), key=lambda s: float(s["start"]))
    assert float(first["end"]) <= float(second["start"])


@pytest.mark.anyio
async def test_a_stage_without_gpus_sees_none(session: Client) -> None:
    slot = await workspace_in_slot(session, "gpuws")
    write_gpu_stages(slot, {}, {"compute": {"gpus": 0}})

    stages = await run_gpu_pipeline(session)

    assert (await stdout_of(session, stages["left"]))["visible"] == "'' PCI_BUS_ID"


@pytest.mark.anyio
async def test_run_when_a_stage_asks_for_more_gpus_than_the_host_has_is_refused_before_launch(
    session: Client,
) -> None:
    slot = await workspace_in_slot(session, "gpuws")
    write_gpu_stages(slot, {"compute": {"gpus": 3}}, {})

    error = await fail(
        session, "run", "GPU_UNAVAILABLE", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC
    )

    assert error["details"] == {"stage": "left", "wanted": 3, "available": 2, "source": "nvidia-smi"}
    assert (await ok(session, "list_runs", workspace="gpuws"))["total"] == 0


@pytest.mark.anyio
async def test_gpu_stage_when_its_gpu_never_has_enough_free_memory_fails_as_infra_error(
    session: Client, fake_gpus: Path
) -> None:
    gpus = default_gpus()
    for gpu in gpus:
        gpu["memory.used"] = 81000
    write_state(fake_gpus, gpus)
    slot = await workspace_in_slot(session, "gpuws")
    write_gpu_stages(slot, {"compute": {"gpus": 1}}, {})

    stages = await run_gpu_pipeline(session)

    left = stages["left"]
    assert (left["status"], left["failure_kind"]) == ("failed", "infra_error"), left
    assert "not ready" in left["error"] and "559 MB free" in left["error"]
    assert stages["right"]["status"] == "completed"


# -- docker: the device request the engine receives -----------------------------------------


def test_docker_container_of_a_gpu_stage_carries_a_device_request_for_its_gpus(tmp_path: Path) -> None:
    from tests.docker_support import require_docker
    from tests.unit.test_container_invocation import make_spec

    engine = require_docker()
    spec = make_spec(tmp_path)
    for folder in (
        spec.code_dir,
        spec.work_dir,
        spec.inputs_dir,
        spec.outputs_dir,
        spec.logs_dir,
        spec.control_dir,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    for file in (spec.config_file, spec.signals_file):
        file.write_text("{}")
    limits = stage_limits(Docker(), replace(spec, gpu_ids=(0, 1)))
    invocation = container_invocation(
        spec, image="goldfish-base:latest", user="1000", limits=limits, project="p"
    )
    arguments = sdk_create_arguments(invocation)
    arguments["name"] = f"goldfish-gputest-{tmp_path.name[-12:]}"
    container = engine.containers.create(**arguments)  # created, never started: no GPU here
    try:
        container.reload()
        (request,) = container.attrs["HostConfig"]["DeviceRequests"]
    finally:
        container.remove(force=True)
    assert request["DeviceIDs"] == ["0", "1"] and request["Capabilities"] == [["gpu"]]


@pytest.mark.anyio
async def test_status_and_doctor_show_the_local_gpus(session: Client, project_root: Path) -> None:
    import os
    import subprocess
    import sys

    status = await ok(session, "status")
    doctor = subprocess.run(
        [sys.executable, "-m", "goldfish", "doctor", "--project", str(project_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )

    gpus = status["gpus"]
    assert (gpus["count"], gpus["source"]) == (2, "nvidia-smi")
    assert [(gpu["index"], gpu["held_by"]) for gpu in gpus["gpus"]] == [(0, None), (1, None)]
    assert "gpus: 2 via nvidia-smi: 0 (81559 MB free), 1 (81559 MB free)" in doctor.stdout, doctor.stdout
