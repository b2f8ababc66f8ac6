"""The VM agent run for real: a subprocess against the GCS emulator and a fake metadata server.

Only the container engine is faked: a ``docker`` executable first on PATH records each call and,
for ``docker run``, runs the job's command on this machine with the ``--mount`` sources put in
place of their targets (so the real stage wrapper writes the logs and the exit code into the
job's logs folder). ``poweroff``/``shutdown``/``halt`` only record the call; ``nvidia-smi`` shows
no GPU. The job's ``docker_run`` is rendered by ``backends/container.py``, as on the server.

``GOLDFISH_TEST_AGENT_PYTHON`` picks the interpreter the agent runs under (default: this one),
e.g. a Python 3.9 to check the agent's compatibility.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from goldfish.backends.container import Limits, container_invocation, docker_run_argv
from goldfish.backends.gce.vm import agent
from goldfish.backends.spec import RunSpec
from goldfish.storage.gcs import GcsStorage
from tests.fakes.fake_metadata import FakeMetadataServer
from tests.fakes.gcs_emulator import GcsBucket, GcsEmulator
from tests.fakes.nvidia_smi import default_gpus, install_fake_nvidia_smi

AGENT = Path(agent.__file__)
STARTUP = AGENT.parent / "startup.sh"
AGENT_PYTHON = os.environ.get("GOLDFISH_TEST_AGENT_PYTHON") or sys.executable
INSTANCE = "goldfish-vm-1"
ZONE = "us-central1-a"
SECRET_VALUE = "s3cr3t-value-9f8e7d"  # noqa: S105 - a test value
WAIT_SECONDS = 20.0
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

FAKE_DOCKER = r"""
import csv, json, os, signal, subprocess, sys

STATE = os.environ["FAKE_DOCKER_DIR"]


def record(entry):
    with open(os.path.join(STATE, "calls.jsonl"), "a") as calls:
        calls.write(json.dumps(entry) + "\n")


def pid_file(name):
    return os.path.join(STATE, name + ".pid")


def kill(name):
    try:
        with open(pid_file(name)) as handle:
            pid = int(handle.read())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def parse_run(options):
    mounts, env, name, workdir = [], {}, "", "/"
    index = 0
    while index < len(options):
        flag, value = options[index], options[index + 1]
        index += 2
        if flag == "--name":
            name = value
        elif flag == "--workdir":
            workdir = value
        elif flag == "--mount":
            fields = dict(item.partition("=")[::2] for item in next(csv.reader([value])))
            mounts.append((fields["target"], fields["source"]))
        elif flag == "--env":
            key, equals, text = value.partition("=")
            env[key] = text if equals else os.environ.get(key, "")
    return name, workdir, mounts, env


def mapper(mounts):
    ordered = sorted(mounts, key=lambda mount: len(mount[0]), reverse=True)

    def one(path):
        for target, source in ordered:
            if path == target or path.startswith(target + "/"):
                return source + path[len(target):]
        return path

    return lambda text: ":".join(one(piece) for piece in text.split(":"))


def run(args):
    separator = args.index("--")
    name, workdir, mounts, env = parse_run(args[:separator])
    command = args[separator + 2:]
    missing = [source for _, source in mounts if not os.path.exists(source)]
    record({"argv": ["docker", "run", *args], "api_token": env.get("API_TOKEN"), "missing": missing})
    if missing:
        print("docker: invalid mount config: bind source path does not exist", file=sys.stderr)
        return 125
    to_host = mapper(mounts)
    env = {key: to_host(value) for key, value in env.items()}
    env["PATH"] = os.environ["PATH"]
    proc = subprocess.Popen(
        [to_host(item) for item in command], env=env, cwd=to_host(workdir), start_new_session=True
    )
    with open(pid_file(name), "w") as handle:
        handle.write(str(proc.pid))
    code = proc.wait()
    os.unlink(pid_file(name))
    return code if code >= 0 else 128 - code


def main(argv):
    if argv[0] == "run":
        return run(argv[1:])
    record({"argv": ["docker", *argv]})
    if argv[0] == "pull" and "missing" in argv[-1]:
        print("Error response from daemon: manifest unknown", file=sys.stderr)
        return 1
    if argv[0] in ("rm", "kill"):
        kill(argv[-1])
    return 0


sys.exit(main(sys.argv[1:]))
"""

POWER_SHIM = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$FAKE_POWER_LOG"
exit 0
"""

NO_GPU_SHIM = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
exit 9
"""

STAGE_MODULE = r"""
import json, os, sys, time
from pathlib import Path

print("stage started", flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
with open(os.environ["GOLDFISH_METRICS_FILE"], "a") as metrics:
    metrics.write(json.dumps({"name": "loss", "value": 0.5, "step": 1}) + "\n")
gate = os.environ.get("STAGE_GATE")
if gate:
    deadline = time.monotonic() + 20
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
inputs = Path(os.environ["GOLDFISH_INPUTS_DIR"])
outputs = Path(os.environ["GOLDFISH_OUTPUTS_DIR"])
model = outputs / "model"
(model / "nested").mkdir(parents=True, exist_ok=True)
features = inputs / "features"
text = "".join(path.read_text() for path in sorted(features.rglob("*.txt"))) if features.exists() else ""
vocab = (inputs / "vocab" / "vocab.txt").read_text() if (inputs / "vocab").exists() else ""
(model / "weights.txt").write_text(text + vocab)
(model / "nested" / "deep.txt").write_text("deep")
(outputs / "score").write_text("0.9")
token = os.environ.get("API_TOKEN")
if token:
    (model / "token_seen.txt").write_text(token)
    print("token is", token, flush=True)
    with open(os.environ["GOLDFISH_LOGS_DIR"] + "/stderr.log", "a") as direct:  # around the runner
        direct.write("direct " + token + "\n")
print("stage done", flush=True)
sys.exit(int(os.environ.get("STAGE_EXIT", "0")))
"""


def wait_for(what: str, predicate: Callable[[], object], timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Vm:
    """One simulated VM: fake tools, a fake metadata server, the bucket, and the agent process."""

    tmp: Path
    bucket: GcsBucket
    emulator: GcsEmulator
    metadata: FakeMetadataServer
    store: GcsStorage
    root: Path
    bin_dir: Path
    docker_dir: Path
    power_log: Path
    console: Path
    process: subprocess.Popen[bytes] | None = None
    images: list[str] = field(default_factory=list)

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{key}"

    def read(self, key: str) -> bytes | None:
        return self.store.read_bytes(key)

    def read_json(self, key: str) -> Any:
        data = self.read(key)
        return None if data is None else json.loads(data)

    def put_job(
        self,
        run_id: str,
        *,
        image: str = "registry.local:5000/goldfish/stage:v1",
        stage_env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        gpu_count: int = 0,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> str:
        """Upload a bundle, inputs, secrets and job.json for ``run_id``; the goldfish-job value."""
        self._put_inputs()
        base = f"runs/{run_id}"
        self.store.write_bytes(f"{base}/bundle.tar.gz", bundle())
        raw = self.job_json(run_id, image=image, stage_env=stage_env or {}, gpu_count=gpu_count)
        if secrets is not None:
            self.store.write_bytes(f"{base}/secrets.json", json.dumps(secrets).encode())
            raw["secrets_uri"] = self.uri(f"{base}/secrets.json")
            argv = raw["docker_run"]
            separator = argv.index("--")
            raw["docker_run"] = [
                *argv[:separator],
                *(f for name in secrets for f in ("--env", name)),
                *argv[separator:],
            ]
        if edit is not None:
            edit(raw)
        self.store.write_bytes(f"{base}/job.json", json.dumps(raw).encode())
        return json.dumps({"stage_run_id": run_id, "attempt": 1, "job_uri": self.uri(f"{base}/job.json")})

    def _put_inputs(self) -> None:
        self.store.write_bytes("runs/stage-000000000000/outputs/features/part-0.txt", b"alpha\n")
        self.store.write_bytes("runs/stage-000000000000/outputs/features/sub/part-1.txt", b"beta\n")
        self.store.write_bytes("datasets/vocab.txt", b"vocab\n")

    def job_json(
        self, run_id: str, *, image: str, stage_env: dict[str, str], gpu_count: int
    ) -> dict[str, Any]:
        directory = Path(f"{self.root}/{run_id}/a1")
        spec = RunSpec(
            stage_run_id=run_id,
            workspace="w1",
            stage="train",
            module="train",
            code_dir=directory / "code",
            run_dir=directory,
            inputs={"features": directory / "inputs/features", "vocab": directory / "inputs/vocab"},
            outputs_dir=directory / "outputs",
            logs_dir=directory / "logs",
            config_file=directory / "config/config.json",
            signals_file=directory / "config/signals.json",
            timeout_seconds=600,
            python="python3",
            image=image,
            env=stage_env,
        )
        invocation = container_invocation(
            spec, image=image, user="1000:1000", limits=Limits(), project="testproj"
        )
        base = f"runs/{run_id}"
        return {
            "schema_version": 1,
            "stage_run_id": run_id,
            "attempt": 1,
            "image": image,
            "command": invocation.command,
            "env": invocation.env,
            "secrets_uri": None,
            "job_dir": str(directory),
            "container_name": invocation.name,
            "docker_run": docker_run_argv(invocation, detach=False),
            "bundle_uri": self.uri(f"{base}/bundle.tar.gz"),
            "inputs": [
                {
                    "name": "features",
                    "uri": self.uri("runs/stage-000000000000/outputs/features/"),
                    "kind": "dir",
                },
                {"name": "vocab", "uri": self.uri("datasets/vocab.txt"), "kind": "file"},
            ],
            "outputs": ["model", "score", "never_written"],
            "outputs_uri": self.uri(f"{base}/outputs/"),
            "logs": {
                "stdout": self.uri(f"{base}/logs/stdout.log"),
                "stderr": self.uri(f"{base}/logs/stderr.log"),
                "metrics": self.uri(f"{base}/logs/metrics.jsonl"),
                "exit_code": self.uri(f"{base}/logs/exit_code.txt"),
                "heartbeat": self.uri(f"{base}/heartbeat.json"),
                "ack": self.uri(f"{base}/ack.json"),
                "failure": self.uri(f"{base}/failure.json"),
                "preempted": self.uri(f"{base}/preempted.json"),
                "stage_heartbeat": self.uri(f"{base}/logs/stage_heartbeat.json"),
            },
            "log_sync_interval": 1,
            "timeout_seconds": 600,
            "gpu_count": gpu_count,
            "gpu_wait_seconds": 1,
            "container": {
                "memory": "4g",
                "cpus": 2,
                "pids_limit": 512,
                "user": "1000:1000",
                "network": "bridge",
            },
        }

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "GCE_METADATA_HOST": self.metadata.host,
                "STORAGE_EMULATOR_HOST": self.bucket.host,
                agent.JOB_ROOT_ENV: str(self.root),
                "FAKE_DOCKER_DIR": str(self.docker_dir),
                "FAKE_POWER_LOG": str(self.power_log),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "GOLDFISH_AGENT_HOME": str(self.tmp / "agent-home"),
            }
        )
        return env

    def start(self, *, via_startup_script: bool = False) -> None:
        if via_startup_script:
            self.metadata.set_attribute("goldfish-agent", AGENT.read_text(encoding="utf-8"))
            argv = ["bash", str(STARTUP)]
        else:
            argv = [AGENT_PYTHON, str(AGENT)]
        with self.console.open("ab") as console:
            self.process = subprocess.Popen(
                argv,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
            )

    def wait_exit(self) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent did not exit; its log:\n{self.console_text()}")

    def console_text(self) -> str:
        return self.console.read_text(encoding="utf-8", errors="replace") if self.console.exists() else ""

    def docker_calls(self) -> list[dict[str, Any]]:
        calls = self.docker_dir / "calls.jsonl"
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]

    def power_calls(self) -> list[str]:
        return self.power_log.read_text(encoding="utf-8").splitlines() if self.power_log.exists() else []

    def uploads(self, run_id: str) -> list[str]:
        """Object names of this run uploaded (in order) according to the emulator's request log."""
        marker = f"/upload/storage/v1/b/{self.bucket.name}/o?uploadType="
        names = []
        for line in self.emulator.requests_seen().splitlines():
            if marker in line and "POST" in line:
                found = re.search(r"[?&]name=([^&\s\"]+)", line)
                if found and found.group(1).startswith(f"runs%2F{run_id}%2F"):
                    names.append(found.group(1).replace("%2F", "/"))
        return names


def bundle() -> bytes:
    files = {
        "code/modules/__init__.py": b"",
        "code/modules/train.py": STAGE_MODULE.encode(),
        "config/config.json": b'{"lr": 0.1}',
        "config/signals.json": b'{"inputs": {}, "outputs": {}}',
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mode = 0o644
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _tool(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def vm(tmp_path: Path, gcs_bucket: GcsBucket, gcs_emulator: GcsEmulator) -> Iterator[Vm]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "docker", f"#!{sys.executable}\n{FAKE_DOCKER}")
    for name in ("poweroff", "shutdown", "halt"):
        _tool(bin_dir, name, POWER_SHIM)
    _tool(bin_dir, "nvidia-smi", NO_GPU_SHIM)
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    metadata = FakeMetadataServer(instance_name=INSTANCE, zone=ZONE)
    metadata.start()
    machine = Vm(
        tmp=tmp_path,
        bucket=gcs_bucket,
        emulator=gcs_emulator,
        metadata=metadata,
        store=GcsStorage(gcs_bucket.name),
        root=tmp_path / "jobs",
        bin_dir=bin_dir,
        docker_dir=docker_dir,
        power_log=tmp_path / "poweroff.log",
        console=tmp_path / "agent.log",
    )
    try:
        yield machine
    finally:
        if machine.process is not None and machine.process.poll() is None:
            machine.process.kill()
            machine.process.wait(timeout=10)
        metadata.stop()


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
    assert (tmp_path / "agent-home" / "agent.py").read_bytes() == AGENT.read_bytes()


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


# -- the agent's storage client against the emulator -------------------------------------------


def test_agent_storage_when_files_are_large_or_empty_uploads_them_resumably(
    gcs_bucket: GcsBucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent, "RESUMABLE_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(agent, "RESUMABLE_CHUNK", 256 * 1024)
    storage = agent.Storage(None, gcs_bucket.host)
    store = GcsStorage(gcs_bucket.name)
    data = os.urandom(600 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    (tmp_path / "empty.log").write_bytes(b"")
    storage.upload_file(f"gs://{gcs_bucket.name}/runs/r/big.bin", str(big))
    storage.upload_file(f"gs://{gcs_bucket.name}/runs/r/empty.log", str(tmp_path / "empty.log"))
    storage.write_json(f"gs://{gcs_bucket.name}/runs/r/ack.json", {"a": 1})
    assert store.read_bytes("runs/r/big.bin") == data
    assert store.read_bytes("runs/r/empty.log") == b""
    assert json.loads(store.read_bytes("runs/r/ack.json") or b"") == {"a": 1}
    assert sorted(storage.list_names(f"gs://{gcs_bucket.name}/runs/r/")) == [
        "runs/r/ack.json",
        "runs/r/big.bin",
        "runs/r/empty.log",
    ]
    back = tmp_path / "back.bin"
    storage.download_to(f"gs://{gcs_bucket.name}/runs/r/big.bin", str(back))
    assert back.read_bytes() == data
    with pytest.raises(agent.HttpError) as caught:
        storage.read_bytes(f"gs://{gcs_bucket.name}/runs/r/missing")
    assert caught.value.status == 404


def test_startup_script_when_the_agent_is_not_in_metadata_fails_without_running_anything(vm: Vm) -> None:
    done = subprocess.run(
        ["bash", str(STARTUP)],
        env=vm.environment(),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert done.returncode != 0
    assert "goldfish-agent metadata value is missing" in done.stderr
    assert not (vm.tmp / "agent-home" / "agent.py").exists()
    assert vm.docker_calls() == [] and vm.power_calls() == []


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
