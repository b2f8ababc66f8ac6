"""The VM agent run for real on jobs: cold and warm starts, idle power-off, preemption, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from goldfish.backends.gce.startup import agent_archive
from tests.integration.gce_agent.vm_support import INSTANCE, ISO_UTC, SECRET_VALUE, ZONE, Vm, wait_for


def test_cold_job_when_started_by_the_startup_script_streams_logs_uploads_outputs_then_exit_code(
    vm: Vm, tmp_path: Path
) -> None:
    run_id = "stage-c01d00000001"
    gate = tmp_path / "gate"
    pointer = vm.put_job(run_id, stage_env={"STAGE_GATE": str(gate)}, secrets={"API_TOKEN": SECRET_VALUE})
    vm.metadata.set_attribute("goldfish-job", pointer)
    vm.start(via_startup_script=True)

    # While the stage runs: ack, heartbeat and its logs are in the bucket, no exit code yet.
    stdout = wait_for(
        "stdout.log in GCS", lambda: b"stage started" in (vm.read(f"runs/{run_id}/logs/stdout.log") or b"")
    )
    assert stdout
    ack = vm.read_json(f"runs/{run_id}/ack.json")
    assert ack["instance"] == INSTANCE and ack["zone"] == ZONE and ack["attempt"] == 1
    assert ISO_UTC.fullmatch(ack["at"])
    heartbeat = vm.read_json(f"runs/{run_id}/heartbeat.json")
    assert heartbeat["attempt"] == 1 and ISO_UTC.fullmatch(heartbeat["at"])
    assert vm.read(f"runs/{run_id}/logs/exit_code.txt") is None
    gate.touch()

    assert vm.wait_exit() == 0
    assert vm.read(f"runs/{run_id}/logs/exit_code.txt") == b"0"
    assert vm.read(f"runs/{run_id}/outputs/model/weights.txt") == b"alpha\nbeta\nvocab\n"
    assert vm.read(f"runs/{run_id}/outputs/model/nested/deep.txt") == b"deep"
    assert vm.read(f"runs/{run_id}/outputs/score/score") == b"0.9"
    assert b"stage done" in (vm.read(f"runs/{run_id}/logs/stdout.log") or b"")
    assert b"a warning on stderr" in (vm.read(f"runs/{run_id}/logs/stderr.log") or b"")
    assert json.loads(vm.read(f"runs/{run_id}/logs/metrics.jsonl") or b"{}")["name"] == "loss"
    assert vm.read(f"runs/{run_id}/failure.json") is None
    uploads = vm.uploads(run_id)
    assert uploads[-1] == f"runs/{run_id}/logs/exit_code.txt"
    assert uploads.index(f"runs/{run_id}/outputs/score/score") < len(uploads) - 1
    # The secret reached the container only, never the agent's log.
    assert vm.read(f"runs/{run_id}/outputs/model/token_seen.txt") == SECRET_VALUE.encode()
    assert SECRET_VALUE not in vm.console_text()
    logs = b"".join(vm.read(f"runs/{run_id}/logs/{name}") or b"" for name in ("stdout.log", "stderr.log"))
    assert SECRET_VALUE.encode() not in logs and b"token is ***" in logs and b"direct ***" in logs
    assert SECRET_VALUE not in json.dumps(vm.metadata.attributes())
    calls = vm.docker_calls()
    assert [call["argv"][1] for call in calls] == ["pull", "rm", "run", "rm"]
    assert calls[0]["argv"][2] == "registry.local:5000/goldfish/stage:v1"
    assert calls[2]["argv"] == vm.read_json(f"runs/{run_id}/job.json")["docker_run"]
    assert calls[2]["api_token"] == SECRET_VALUE
    assert vm.power_calls() == ["poweroff "]
    assert (tmp_path / "agent-home" / "agent.pyz").read_bytes() == agent_archive()


def test_warm_vm_when_jobs_arrive_runs_each_with_its_own_image_on_its_own_paths(vm: Vm) -> None:
    state_key = f"warm/{INSTANCE}/state.json"
    warm = {"idle_timeout_seconds": 120, "state_uri": vm.uri(state_key)}
    vm.metadata.set_attribute("goldfish-warm", json.dumps(warm))
    first, second = "stage-aaaa00000001", "stage-bbbb00000002"
    vm.metadata.set_attribute("goldfish-job", vm.put_job(first))
    vm.start()

    wait_for("the first exit code", lambda: vm.read(f"runs/{first}/logs/exit_code.txt"))
    idle = wait_for(
        "the idle state",
        lambda: (vm.read_json(state_key) or {}).get("state") == "idle" and vm.read_json(state_key),
    )
    assert idle["run_id"] is None and ISO_UTC.fullmatch(idle["idle_deadline"])
    second_image = "registry.local:5000/goldfish/stage:v2"
    vm.metadata.set_attribute(
        "goldfish-job", vm.put_job(second, image=second_image, stage_env={"STAGE_EXIT": "3"})
    )
    wait_for("the second exit code", lambda: vm.read(f"runs/{second}/logs/exit_code.txt"))
    wait_for("idle again", lambda: (vm.read_json(state_key) or {}).get("state") == "idle")
    # The same job handed over again is not run twice.
    again = {"stage_run_id": first, "attempt": 1, "job_uri": vm.uri(f"runs/{first}/job.json")}
    vm.metadata.set_attribute("goldfish-job", json.dumps(again))
    wait_for("the repeat to be ignored", lambda: "already run, ignored" in vm.console_text())

    assert vm.read(f"runs/{first}/logs/exit_code.txt") == b"0"
    assert vm.read(f"runs/{second}/logs/exit_code.txt") == b"3"
    assert vm.read(f"runs/{second}/outputs/score/score") == b"0.9"
    assert b"stage done" in (vm.read(f"runs/{second}/logs/stdout.log") or b"")
    assert vm.read_json(f"runs/{second}/ack.json")["attempt"] == 1
    pulls = [call["argv"][2] for call in vm.docker_calls() if call["argv"][1] == "pull"]
    assert pulls == ["registry.local:5000/goldfish/stage:v1", second_image]
    runs = [call["argv"] for call in vm.docker_calls() if call["argv"][1] == "run"]
    assert len(runs) == 2 and f"goldfish-{second}" in runs[1] and second_image in runs[1]
    assert not (vm.root / first).exists()  # the previous job's folder is cleared
    assert vm.power_calls() == []
    assert vm.process is not None and vm.process.poll() is None


def test_warm_vm_when_its_idle_deadline_passes_reports_stopped_and_powers_off(vm: Vm) -> None:
    state_key = f"warm/{INSTANCE}/state.json"
    warm = {"idle_timeout_seconds": 2, "state_uri": vm.uri(state_key)}
    vm.metadata.set_attribute("goldfish-warm", json.dumps(warm))
    run_id = "stage-cccc00000003"
    vm.metadata.set_attribute("goldfish-job", vm.put_job(run_id))
    vm.start()

    assert vm.wait_exit() == 0
    assert vm.read(f"runs/{run_id}/logs/exit_code.txt") == b"0"
    stopped = vm.read_json(state_key)
    assert stopped["state"] == "stopped" and stopped["run_id"] is None
    assert vm.power_calls() == ["poweroff "]


def test_preemption_when_notice_arrives_mid_run_kills_the_container_and_writes_no_exit_code(
    vm: Vm, tmp_path: Path
) -> None:
    run_id = "stage-9e0000000001"
    vm.metadata.set_attribute(
        "goldfish-job", vm.put_job(run_id, stage_env={"STAGE_GATE": str(tmp_path / "never")})
    )
    vm.start()
    wait_for(
        "stdout.log in GCS", lambda: b"stage started" in (vm.read(f"runs/{run_id}/logs/stdout.log") or b"")
    )

    vm.metadata.set_preempted(True)

    assert vm.wait_exit() == 0
    preempted = vm.read_json(f"runs/{run_id}/preempted.json")
    assert preempted["attempt"] == 1 and ISO_UTC.fullmatch(preempted["at"])
    assert vm.read(f"runs/{run_id}/logs/exit_code.txt") is None
    assert vm.read(f"runs/{run_id}/failure.json") is None
    assert ["docker", "kill", f"goldfish-{run_id}"] in [call["argv"] for call in vm.docker_calls()]
    assert vm.power_calls() == []  # a preempted VM is stopped by Compute Engine, not by the agent


def test_job_failing_validation_is_refused_with_failure_json_and_never_run(vm: Vm, tmp_path: Path) -> None:
    run_id = "stage-bad000000001"
    marker = tmp_path / "pwned"

    def hostile(raw: dict[str, Any]) -> None:
        raw["docker_run"] = ["sh", "-c", f"touch {marker}"]

    vm.metadata.set_attribute("goldfish-job", vm.put_job(run_id, edit=hostile))
    vm.start()

    assert vm.wait_exit() == 0
    failure = vm.read_json(f"runs/{run_id}/failure.json")
    assert failure["kind"] == "infra_error" and "docker_run" in failure["reason"]
    assert vm.read(f"runs/{run_id}/ack.json") is None
    assert vm.docker_calls() == []
    assert not marker.exists()
    assert vm.power_calls() == ["poweroff "]


def test_gpu_job_when_no_gpu_appears_fails_as_infra_error_without_running(vm: Vm) -> None:
    run_id = "stage-69a000000001"
    vm.metadata.set_attribute("goldfish-job", vm.put_job(run_id, gpu_count=1))
    vm.start()

    assert vm.wait_exit() == 0
    failure = vm.read_json(f"runs/{run_id}/failure.json")
    assert failure["kind"] == "infra_error" and failure["attempt"] == 1
    assert "nvidia-smi" in failure["reason"] and "couldn't communicate" in failure["reason"]
    assert vm.read_json(f"runs/{run_id}/ack.json")["attempt"] == 1
    assert vm.read(f"runs/{run_id}/logs/exit_code.txt") is None
    assert vm.docker_calls() == []
