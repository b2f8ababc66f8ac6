"""The docker backend: each stage attempt is a sandboxed container on the local Docker engine.

The container comes from :func:`goldfish.backends.container.container_invocation` (the one
builder every container path uses): the stage image (base + goldfish runtime + requirements
layer, see ``images``), a numeric non-root user, inputs/code/config read-only, outputs,
logs and the working folder read-write, memory/CPU/pids limits, the configured network, no
capabilities, and labels naming the stage run and the project. The stage wrapper writes
stdout/stderr and the exit code into the logs mount, so logs stream live from the host files
and the outcome survives the server, the driver and even the container's removal.

Cancel and timeout: the stop file is created, TERM reaches every stage process (the wrapper,
PID 1, stays to record the exit code), and after the grace period the container is killed and
removed. ``find`` looks a container up by its labels, so a driver that died between starting a
container and recording its handle is reconciled by the next one.

The docker SDK comes from ``adaptor`` on first use: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from goldfish.backends.container import (
    CONTAINER_UID,
    CONTROL_DIR,
    INTERPRETER,
    LOGS_DIR,
    PROJECT_LABEL,
    STAGE_RUN_LABEL,
    ContainerInvocation,
    ImageNotPreparedError,
    Limits,
    container_invocation,
    memory_bytes,
    project_label,
)
from goldfish.backends.docker.adaptor import DockerUnavailableError, connect, sdk, short_error
from goldfish.backends.docker.images import StageImageRequest, ensure_stage_image
from goldfish.backends.protocol import BackendSettings, BackendStatus, Capabilities, Handle, OnBuild
from goldfish.backends.spec import RunSpec, read_exit_code, read_log
from goldfish.config import Docker

log = logging.getLogger("goldfish.backends.docker")
_ALIVE = {"created", "running", "restarting", "paused"}
RECHECK_SECONDS = 1.0  # while a container runs, ask the engine about it at most this often


def sdk_create_arguments(invocation: ContainerInvocation) -> dict[str, Any]:
    """``containers.create`` keyword arguments for an invocation (the SDK face of the one builder)."""
    types = sdk().types
    limits = invocation.limits
    arguments: dict[str, Any] = {
        "image": invocation.image,
        "command": invocation.command,
        "name": invocation.name,
        "user": invocation.user,
        "working_dir": invocation.workdir,
        "environment": dict(invocation.env),
        "labels": dict(invocation.labels),
        "mounts": [
            types.Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
            for m in invocation.mounts
        ],
        "pids_limit": limits.pids,
        "security_opt": list(invocation.security),
        "cap_drop": list(invocation.cap_drop),
        "detach": True,
        "stdin_open": False,
        "log_config": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
    }
    if limits.memory is not None:
        arguments["mem_limit"] = arguments["memswap_limit"] = memory_bytes(limits.memory)
    if limits.cpus is not None:
        arguments["nano_cpus"] = int(limits.cpus * 1e9)
    if limits.shm_size is not None:
        arguments["shm_size"] = limits.shm_size
    if not limits.network:
        arguments["network_mode"] = "none"
    if limits.gpu_devices or limits.gpus:
        devices = list(limits.gpu_devices) or None
        count = None if devices else limits.gpus
        arguments["device_requests"] = [
            types.DeviceRequest(device_ids=devices, count=count, capabilities=[["gpu"]])
        ]
    return arguments


def stage_limits(settings: Docker, spec: RunSpec) -> Limits:
    """The container limits of a local stage: goldfish.yaml's docker section + the GPUs it was given."""
    return Limits(
        memory=settings.memory,
        cpus=settings.cpus,
        pids=settings.pids_limit,
        network=settings.network,
        gpus=len(spec.gpu_ids),
        gpu_devices=tuple(str(device) for device in spec.gpu_ids),
    )


class DockerBackend:
    """Runs stages as containers on the local Docker engine."""

    name = "docker"
    capabilities = Capabilities(gpu=True, isolation="container", survives_server_restart=True)  # compute.gpus

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._docker = settings.config.docker
        self._project = project_label(settings.project_root)
        self._client_obj: Any = None
        self._seen_running: dict[str, float] = {}

    # -- protocol ---------------------------------------------------------------------------
    def prepare(self, spec: RunSpec, on_build: OnBuild) -> RunSpec:
        """Build or reuse the stage image (base + runtime + requirements.txt layer)."""
        requirements = spec.code_dir / "requirements.txt"
        request = StageImageRequest(
            base_image=self._docker.base_image,
            requirements=requirements.read_bytes() if requirements.is_file() else None,
            workspace=spec.workspace,
            stage_run_id=spec.stage_run_id,
            log_file=spec.logs_dir / "build.log",
        )
        image = ensure_stage_image(
            self._client(), self._settings.builds, self._settings.locks, request, on_build
        )
        return replace(spec, image=image, python=INTERPRETER)

    def launch(self, spec: RunSpec) -> Handle:
        """Create and start the stage container; return its id, name and the log locations."""
        docker = sdk()
        if spec.image is None:
            raise ImageNotPreparedError("The stage image was not prepared before launch.")
        for folder in (spec.logs_dir, spec.outputs_dir, spec.inputs_dir, spec.control_dir, spec.work_dir):
            folder.mkdir(parents=True, exist_ok=True)
        user = self._user_for(spec)
        invocation = container_invocation(
            spec, image=spec.image, user=user, limits=stage_limits(self._docker, spec), project=self._project
        )
        client = self._client()
        self._remove(self._by_name(invocation.name))  # a container of an earlier attempt
        try:
            container = client.containers.create(**sdk_create_arguments(invocation))
        except docker.errors.DockerException as exc:
            raise OSError(f"docker could not create the stage container: {short_error(exc)}") from None
        try:
            container.start()
        except docker.errors.DockerException as exc:
            self._remove(container)
            raise OSError(f"docker could not start the stage container: {short_error(exc)}") from None
        return self._handle(
            container.id, invocation.name, spec.stage_run_id, spec.logs_dir, spec.stop_file, user
        )

    def find(self, stage_run_id: str) -> Handle | None:
        """The handle of this project's container for ``stage_run_id``, found by its labels."""
        container = self._by_label(stage_run_id)
        if container is None:
            return None
        if container.status == "created":  # the launch died between create and start
            container.start()
        mounts = {m.get("Destination"): m.get("Source") for m in container.attrs.get("Mounts", [])}
        logs, control = mounts.get(LOGS_DIR), mounts.get(CONTROL_DIR)
        if not logs or not control:
            return None
        user = str(container.attrs.get("Config", {}).get("User") or "")
        return self._handle(
            container.id, container.name, stage_run_id, Path(logs), Path(control) / "stop", user
        )

    def status(self, handle: Handle) -> BackendStatus:
        """Exited (exit code file, else the container's code), running, or lost when the container is gone."""
        key = str(handle.get("container_id"))
        code = read_exit_code(Path(handle["logs_dir"]))
        if code is not None:
            self._seen_running.pop(key, None)
            return BackendStatus("exited", exit_code=code)
        seen = self._seen_running.get(key)
        if seen is not None and time.monotonic() - seen < RECHECK_SECONDS:
            return BackendStatus("running")  # the exit code file above is what ends a stage
        return self._ask_engine(handle, key)

    def _ask_engine(self, handle: Handle, key: str) -> BackendStatus:
        try:
            container = self._container(handle)
        except DockerUnavailableError as exc:  # the exit code file decides once the engine is back
            return BackendStatus("running", detail=exc.message)
        if container is not None and container.status in _ALIVE:
            self._seen_running[key] = time.monotonic()
            return BackendStatus("running")
        code = read_exit_code(Path(handle["logs_dir"]))  # it may have finished between the two checks
        if code is not None:
            return BackendStatus("exited", exit_code=code)
        if container is None:
            return BackendStatus("lost", detail="the stage container is gone and left no exit code")
        state = container.attrs.get("State", {})
        detail = (
            "killed: out of memory" if state.get("OOMKilled") else "the container exited without the wrapper"
        )
        return BackendStatus("exited", exit_code=int(state.get("ExitCode", -1)), detail=detail)

    def logs(self, handle: Handle, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        """Log text from ``offset`` (the wrapper writes the logs into the logs mount)."""
        return read_log(Path(handle["logs_dir"]), stream, offset)

    def cancel(self, handle: Handle, grace_seconds: float = 5.0) -> None:
        """Create the stop file, TERM the stage's processes, then kill and remove the container."""
        stop = Path(handle["stop_file"])
        with contextlib.suppress(OSError):
            stop.parent.mkdir(parents=True, exist_ok=True)
            stop.touch()
        container = self._container(handle)
        if container is None:
            return
        if container.status == "running":
            self._terminate(container, str(handle.get("user") or ""), grace_seconds)
        self._remove(container)

    def cleanup(self, handle: Handle) -> None:
        """Remove the container (its logs and exit code are already on the host); never raises."""
        docker = sdk()
        try:
            self._remove(self._container(handle))
        except (DockerUnavailableError, docker.errors.DockerException) as exc:
            log.warning("could not remove the container of %s: %s", handle.get("stage_run_id"), exc)

    # -- helpers ----------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._client_obj is None:
            self._client_obj = connect()
        return self._client_obj

    def _user_for(self, spec: RunSpec) -> str:
        """The host user when it is not root; else the image's non-root user.

        For that user the rw mounts are made its own, and the folders of the ro mounts (copies
        made by root, which keep a producer's 0700 mode) readable; stored files are 0444 already.
        """
        if os.geteuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        for folder in (spec.outputs_dir, spec.logs_dir, spec.work_dir):
            for path in (folder, *folder.rglob("*")):
                os.chown(path, CONTAINER_UID, CONTAINER_UID, follow_symlinks=False)
        for folder in (spec.inputs_dir, spec.code_dir):
            for path in (folder, *folder.rglob("*")):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o555)
        return f"{CONTAINER_UID}:{CONTAINER_UID}"

    def _handle(self, container_id: str, name: str, run_id: str, logs: Path, stop: Path, user: str) -> Handle:
        return {
            "backend": self.name,
            "container_id": container_id,
            "container_name": name,
            "stage_run_id": run_id,
            "logs_dir": str(logs),
            "stop_file": str(stop),
            "user": user,
        }

    def _container(self, handle: Handle) -> Any:
        """The handle's container (by id, else by labels), or None when it no longer exists."""
        docker = sdk()
        try:
            return self._client().containers.get(handle["container_id"])
        except docker.errors.NotFound:
            return self._by_label(str(handle.get("stage_run_id", "")))
        except docker.errors.DockerException as exc:
            raise DockerUnavailableError(
                f"Docker did not answer about the stage container: {short_error(exc)}"
            ) from None

    def _by_label(self, stage_run_id: str) -> Any:
        if not stage_run_id:
            return None
        docker = sdk()
        labels = [f"{STAGE_RUN_LABEL}={stage_run_id}", f"{PROJECT_LABEL}={self._project}"]
        try:
            found = self._client().containers.list(all=True, filters={"label": labels})
        except docker.errors.DockerException as exc:
            raise DockerUnavailableError(
                f"Docker could not list the stage containers: {short_error(exc)}"
            ) from None
        return max(found, key=lambda c: str(c.attrs.get("Created", ""))) if found else None

    def _by_name(self, name: str) -> Any:
        docker = sdk()
        try:
            return self._client().containers.get(name)
        except docker.errors.NotFound:
            return None

    def _terminate(self, container: Any, user: str, grace_seconds: float) -> None:
        """TERM every process but PID 1 (the wrapper records the exit code), then wait for the exit."""
        docker = sdk()
        with contextlib.suppress(docker.errors.DockerException):
            container.exec_run(["/bin/sh", "-c", "kill -TERM -1"], user=user or str(CONTAINER_UID))
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            try:
                container.reload()
            except docker.errors.NotFound:
                return
            if container.status not in _ALIVE:
                return
            time.sleep(0.1)

    def _remove(self, container: Any) -> None:
        docker = sdk()
        if container is None:
            return
        with contextlib.suppress(docker.errors.NotFound):
            try:
                container.remove(force=True)
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
