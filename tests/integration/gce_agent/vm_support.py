"""One simulated VM for the agent tests: fake tools, a fake metadata server, the bucket, the agent process.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from goldfish.backends.container import Limits, container_invocation, docker_run_argv
from goldfish.backends.gce.startup import agent_archive, startup_files
from goldfish.backends.gce.vm import layout
from goldfish.backends.spec import RunSpec
from goldfish.storage.gcs import GcsStorage
from tests.fakes.fake_metadata import FakeMetadataServer
from tests.fakes.gcs_emulator import GcsBucket, GcsEmulator

STARTUP = Path(layout.__file__).parent / "startup.sh"
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
                layout.JOB_ROOT_ENV: str(self.root),
                "FAKE_DOCKER_DIR": str(self.docker_dir),
                "FAKE_POWER_LOG": str(self.power_log),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "GOLDFISH_AGENT_HOME": str(self.tmp / "agent-home"),
            }
        )
        return env

    def start(self, *, via_startup_script: bool = False) -> None:
        if via_startup_script:
            self.metadata.set_attribute("goldfish-agent", startup_files().agent)
            argv = ["bash", str(STARTUP)]
        else:
            archive = self.tmp / "agent.pyz"
            archive.write_bytes(agent_archive())
            argv = [AGENT_PYTHON, str(archive)]
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
