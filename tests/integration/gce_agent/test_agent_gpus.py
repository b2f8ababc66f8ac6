"""GPU readiness and telemetry on the simulated VM (a fake nvidia-smi with two GPUs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.nvidia_smi import default_gpus, install_fake_nvidia_smi
from tests.integration.gce_agent.vm_support import Vm, wait_for

# -- GPU readiness and telemetry on the VM (a fake nvidia-smi with two GPUs) --------------------


def _with_fake_gpus(vm: Vm, used_mb: int = 0) -> Path:
    state = vm.tmp / "gpu-state.json"
    gpus = default_gpus()
    for gpu in gpus:
        gpu["memory.used"] = used_mb
    install_fake_nvidia_smi(vm.bin_dir, state, gpus)
    return state


def test_gpu_job_when_free_memory_stays_below_the_minimum_fails_as_infra_error_saying_what_it_saw(
    vm: Vm,
) -> None:
    _with_fake_gpus(vm, used_mb=81000)
    run_id = "stage-69a000000002"

    def edit(raw: dict[str, Any]) -> None:
        raw.update(gpu_min_free_mb=1000, gpu_wait_seconds=0.2)

    vm.metadata.set_attribute("goldfish-job", vm.put_job(run_id, gpu_count=1, edit=edit))
    vm.start()

    assert vm.wait_exit() == 0
    failure = vm.read_json(f"runs/{run_id}/failure.json")
    assert failure["kind"] == "infra_error"
    assert "at least 1000 MB" in failure["reason"] and "559" in failure["reason"], failure
    assert vm.docker_calls() == []


def test_gpu_job_when_running_samples_each_gpu_into_the_uploaded_metrics(vm: Vm, tmp_path: Path) -> None:
    _with_fake_gpus(vm, used_mb=1234)
    run_id = "stage-69a000000003"
    gate = tmp_path / "gate"

    def edit(raw: dict[str, Any]) -> None:
        raw.update(gpu_min_free_mb=1000, gpu_wait_seconds=1, telemetry_interval=0.1, telemetry_max_points=50)

    pointer = vm.put_job(run_id, gpu_count=2, stage_env={"STAGE_GATE": str(gate)}, edit=edit)
    vm.metadata.set_attribute("goldfish-job", pointer)
    vm.start()

    def gpu_names() -> set[str]:
        text = (vm.read(f"runs/{run_id}/logs/metrics.jsonl") or b"").decode()
        return {json.loads(line)["name"] for line in text.splitlines() if line.strip()}

    wait_for("GPU telemetry in the bucket", lambda: "sys/gpu1/temp_c" in gpu_names())
    gate.touch()
    assert vm.wait_exit() == 0
    names = gpu_names()
    assert {f"sys/gpu{i}/{s}" for i in (0, 1) for s in ("util", "mem_mb", "temp_c")} <= names
    assert "loss" in names  # the stage's own metrics are still there
    lines = (vm.read(f"runs/{run_id}/logs/metrics.jsonl") or b"").decode().splitlines()
    mem = [json.loads(line)["value"] for line in lines if '"sys/gpu0/mem_mb"' in line]
    assert mem and set(mem) == {1234.0}
