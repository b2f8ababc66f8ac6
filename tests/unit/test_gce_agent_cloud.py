"""The VM agent against what a real VM does to it: preemption's 30 s, registry logins, slow uploads.

The agent's objects run here with an in-memory bucket and metadata server at the outermost
boundary (the agent's own ``Storage`` and ``Metadata`` talk HTTP; these stand in for them).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from goldfish.backends.gce.vm import docker_cli, errors, job_run, job_spec, metadata
from tests.unit.test_gce_agent import RUN_ID, docker_run, job

WAIT = 10.0  # bound on every wait below (never a sleep)
HOST = "us-central1-docker.pkg.dev"


class Bucket:
    """Records every write, in order; ``hold_uploads`` makes log uploads hang until released."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.objects: dict[str, bytes] = {}
        self.hold_uploads = threading.Event()
        self.release = threading.Event()
        self.heartbeats = 0
        self.second_heartbeat = threading.Event()

    def write_json(self, uri: str, value: Mapping[str, Any]) -> None:
        self.events.append(("write", uri))
        self.objects[uri] = json.dumps(value).encode()
        if uri.endswith("heartbeat.json"):
            self.heartbeats += 1
            if self.heartbeats >= 2:
                self.second_heartbeat.set()

    def write_bytes(self, uri: str, data: bytes, content_type: str = "") -> None:
        self.events.append(("write", uri))
        self.objects[uri] = data

    def upload_file(self, uri: str, path: str, content_type: str = "") -> None:
        self.events.append(("upload", uri))
        if self.hold_uploads.is_set():
            self.release.wait(WAIT)


class MetadataServer:
    """``read``/``fetch``/``watch`` of the agent's Metadata, from a dict (a missing key reads None)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.stop = threading.Event()

    def read(self, path: str) -> str | None:
        return self.values.get(path)

    def fetch(self, path: str, query: Any = None, timeout: float = 15.0) -> tuple[str | None, str]:
        return self.values.get(path), "etag-1"

    def watch(self, path: str, last_etag: str, timeout_sec: int) -> tuple[str | None, str]:
        self.stop.wait(WAIT)
        return self.values.get(path), last_etag


class VmAgent:
    """What JobRun needs of its Agent."""

    def __init__(self, metadata: MetadataServer, storage: Bucket) -> None:
        self.metadata = metadata
        self.storage = storage
        self.instance = "vm-1"
        self.zone = "us-central1-a"


def _job_run(tmp_path: Path, metadata: dict[str, str], **overrides: Any) -> tuple[job_run.JobRun, Bucket]:
    root = str(tmp_path / "jobs")
    directory = f"{root}/{RUN_ID}/a1"
    raw = job(job_dir=directory, docker_run=docker_run(directory), **overrides)
    bucket = Bucket()
    run = job_run.JobRun(VmAgent(MetadataServer(metadata), bucket), job_spec.validate_job(raw, root))  # type: ignore[arg-type]
    Path(directory, "logs").mkdir(parents=True)
    return run, bucket


def _calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every docker command the agent runs (none is run)."""
    calls: list[dict[str, Any]] = []

    def fake_docker(
        args: list[str],
        timeout: float,
        *,
        env: Mapping[str, str] | None = None,
        stdin_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        calls.append({"args": list(args), "env": dict(env or {}), "stdin": stdin_text})
        return subprocess.CompletedProcess(["docker", *args], 0, "Login Succeeded", "")

    monkeypatch.setattr(docker_cli, "docker", fake_docker)
    return calls


def test_preemption_notice_when_it_arrives_writes_preempted_json_before_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bucket = _job_run(tmp_path, {metadata.PREEMPTED_KEY: "TRUE"})
    calls = _calls(monkeypatch)
    Path(run.path("logs", "stdout.log")).write_text("epoch 1\n")

    run._on_preempted()

    assert bucket.events[0] == ("write", run.job.logs["preempted"])
    assert calls[0]["args"][0] == "kill"
    assert ("upload", run.job.logs["stdout"]) in bucket.events[1:]


def test_preemption_notice_when_a_long_log_upload_holds_the_sync_still_ends_within_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bucket = _job_run(tmp_path, {metadata.PREEMPTED_KEY: "TRUE"})
    _calls(monkeypatch)
    monkeypatch.setattr(job_run, "PREEMPT_SYNC_WAIT_SECONDS", 0.05)
    Path(run.path("logs", "stdout.log")).write_text("a big log\n")
    bucket.hold_uploads.set()
    syncing = threading.Thread(target=run.sync_logs)  # the sync thread, stuck in an upload
    syncing.start()
    try:
        done = threading.Thread(target=run._on_preempted)
        done.start()
        done.join(WAIT / 2)
        assert not done.is_alive()
        assert ("write", run.job.logs["preempted"]) in bucket.events
    finally:
        bucket.release.set()
        syncing.join(WAIT)


def test_finish_when_the_shutdown_of_a_preemption_killed_the_container_reports_preempted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bucket = _job_run(tmp_path, {metadata.PREEMPTED_KEY: "TRUE"}, outputs=[])
    _calls(monkeypatch)

    with pytest.raises(errors.Preempted):
        run._finish(143)  # docker was stopped by the guest's shutdown before the watcher looked

    assert run.job.logs["preempted"] in bucket.objects
    assert run.job.logs["exit_code"] not in bucket.objects


def test_finish_when_no_preemption_was_announced_writes_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bucket = _job_run(tmp_path, {metadata.PREEMPTED_KEY: "FALSE"}, outputs=[])
    _calls(monkeypatch)

    assert run._finish(3) == "exited"

    assert bucket.objects[run.job.logs["exit_code"]] == b"3"
    assert run.job.logs["preempted"] not in bucket.objects


def test_heartbeat_when_a_log_upload_hangs_keeps_beating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bucket = _job_run(tmp_path, {metadata.PREEMPTED_KEY: "FALSE"}, log_sync_interval=0.1)
    _calls(monkeypatch)
    Path(run.path("logs", "stdout.log")).write_text("a log that takes forever to upload\n")
    bucket.hold_uploads.set()

    run._start_threads()
    try:
        assert bucket.second_heartbeat.wait(WAIT), "the heartbeat waited for the log upload"
    finally:
        run.agent.metadata.stop.set()  # type: ignore[attr-defined]
        bucket.release.set()
        run._stop_threads()


def test_pull_when_the_job_names_a_registry_logs_in_with_the_vm_token_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = json.dumps({"access_token": "ya29.secret-token", "expires_in": 3599})
    run, _bucket = _job_run(tmp_path, {metadata.TOKEN_KEY: token}, registry_login=HOST)
    calls = _calls(monkeypatch)

    env = run._registry_env()
    docker_cli.docker_pull(run.job.image, env)

    login, pull = calls
    assert login["args"] == ["login", "--username", "oauth2accesstoken", "--password-stdin", HOST]
    assert login["stdin"] == "ya29.secret-token"
    assert all("ya29" not in arg for arg in login["args"] + pull["args"])
    assert pull["args"] == ["pull", run.job.image]
    config = login["env"]["DOCKER_CONFIG"]
    assert config == pull["env"]["DOCKER_CONFIG"] == run.path("docker-config")
    assert "ya29.secret-token" not in run._redact("said ya29.secret-token")


def test_pull_when_the_vm_has_no_service_account_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _bucket = _job_run(tmp_path, {}, registry_login=HOST)
    calls = _calls(monkeypatch)

    with pytest.raises(errors.AgentFailure) as info:
        run._registry_env()

    assert "no service account" in info.value.reason
    assert calls == []


def test_pull_when_the_job_names_no_registry_runs_docker_as_it_is(tmp_path: Path) -> None:
    run, _bucket = _job_run(tmp_path, {})
    assert run.job.registry_login is None
    assert run._registry_env() is None


@pytest.mark.parametrize("host", ["evil host", "-oProxyCommand", "a/b", "", 5])
def test_validate_job_when_registry_login_is_not_a_host_refuses(host: object) -> None:
    with pytest.raises(errors.JobRefused):
        job_spec.validate_job(job(registry_login=host))
