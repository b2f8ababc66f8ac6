"""A RunSpec as a VM job: ``job.json`` (schema_version 1), the code bundle and the secrets split.

Every bucket key comes from :class:`~goldfish.storage.paths.RunPaths` and every container flag
from :func:`~goldfish.backends.container.container_invocation`, rendered with
:func:`~goldfish.backends.container.docker_run_argv`: the agent on the VM runs that argv as it
is and builds no path, URI or flag itself.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from goldfish.backends.container import Limits, container_invocation, docker_run_argv
from goldfish.backends.gce.vm.layout import SCHEMA_VERSION, job_dir
from goldfish.backends.spec import RunSpec
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage
from goldfish.validation import is_secret_name

GPU_WAIT_SECONDS = 300
# Registries that take a Google OAuth token as the password of user "oauth2accesstoken"
# (Artifact Registry docs, "Configure authentication to Artifact Registry for Docker": access token).
GOOGLE_REGISTRY_SUFFIXES = ("-docker.pkg.dev", "gcr.io")


@dataclass(frozen=True)
class JobInput:
    """One input as the VM fetches it: a ``gs://`` URI and whether it names a folder or a file."""

    name: str
    uri: str
    kind: str  # "dir" | "file"

    def as_json(self) -> dict[str, str]:
        """The ``inputs[]`` entry of job.json."""
        return {"name": self.name, "uri": self.uri, "kind": self.kind}


@dataclass(frozen=True)
class JobSettings:
    """What the job needs besides the spec: image, container limits and user, timings, GPUs."""

    image: str
    limits: Limits
    user: str
    project_label: str
    log_sync_interval: int
    gpu_count: int
    outputs: tuple[str, ...]
    registry_login: str | None = None  # the registry host the VM logs in to with its token
    gpu_wait_seconds: float = GPU_WAIT_SECONDS
    gpu_min_free_mb: float = 0.0


def is_google_registry(host: str) -> bool:
    """Whether ``host`` is Artifact Registry or Container Registry (they take the VM's token)."""
    return host.endswith(GOOGLE_REGISTRY_SUFFIXES)


def registry_login_host(image: str, mode: str) -> str | None:
    """The host a VM must log in to before pulling ``image`` (``gce.registry_login``), or None.

    A VM's docker has no credentials: only Cloud Build, GKE and Cloud Run pull from a private
    Artifact Registry repository without a login. ``auto`` logs in to Google's registries only,
    so the VM's token is never sent anywhere else; ``token`` logs in to any registry host.
    """
    host = image.split("/", 1)[0] if "/" in image else ""
    if not host or mode == "none" or not ("." in host or ":" in host or host == "localhost"):
        return None
    return host if mode == "token" or is_google_registry(host) else None


@dataclass(frozen=True)
class VmJob:
    """A job ready to upload: the job.json document and the secret values kept out of it."""

    document: dict[str, Any]
    secrets: dict[str, str]


def vm_spec(spec: RunSpec, attempt: int) -> RunSpec:
    """``spec`` with every path moved under the attempt's folder on the VM."""
    root = Path(job_dir(spec.stage_run_id, attempt))
    return replace(
        spec,
        code_dir=root / "code",
        run_dir=root,
        inputs={name: root / "inputs" / name for name in spec.inputs},
        outputs_dir=root / "outputs",
        logs_dir=root / "logs",
        config_file=root / "config" / "config.json",
        signals_file=root / "config" / "signals.json",
    )


def job_secrets(spec: RunSpec) -> dict[str, str]:
    """The values that never enter job.json: the stage's secrets, and any env value named like one."""
    return {**{key: value for key, value in spec.env.items() if is_secret_name(key)}, **spec.secrets}


def build_job(
    spec: RunSpec, attempt: int, inputs: list[JobInput], settings: JobSettings, storage: Storage
) -> VmJob:
    """The job.json of one attempt (URIs from RunPaths, the container from the shared builder)."""
    paths = RunPaths(spec.stage_run_id)
    secrets = job_secrets(spec)
    on_vm = vm_spec(spec, attempt)
    invocation = container_invocation(
        on_vm,
        image=settings.image,
        user=settings.user,
        limits=settings.limits,
        project=settings.project_label,
    )
    argv = docker_run_argv(invocation, detach=False, pass_through=set(secrets))
    visible_env = {key: value for key, value in invocation.env.items() if key not in secrets}
    limits = settings.limits
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "stage_run_id": spec.stage_run_id,
        "attempt": attempt,
        "image": settings.image,
        "command": invocation.command,
        "env": visible_env,
        "secrets_uri": storage.uri(paths.secrets) if secrets else None,
        "inputs": [item.as_json() for item in inputs],
        "outputs_uri": storage.uri(paths.outputs) + "/",
        "outputs": list(settings.outputs),
        "logs": {
            "stdout": storage.uri(paths.stdout),
            "stderr": storage.uri(paths.stderr),
            "metrics": storage.uri(paths.metrics),
            "exit_code": storage.uri(paths.exit_code),
            "heartbeat": storage.uri(paths.heartbeat),
            "ack": storage.uri(paths.ack),
            "preempted": storage.uri(paths.preempted),
            "failure": storage.uri(paths.failure),
            "stage_heartbeat": storage.uri(paths.stage_heartbeat),
            "svs_stats": storage.uri(paths.svs_stats),
        },
        "bundle_uri": storage.uri(paths.bundle),
        "job_dir": str(on_vm.run_dir),
        "container_name": invocation.name,
        "docker_run": argv,
        "log_sync_interval": settings.log_sync_interval,
        "timeout_seconds": spec.timeout_seconds,
        "gpu_count": settings.gpu_count,
        "gpu_wait_seconds": settings.gpu_wait_seconds,
        "gpu_min_free_mb": settings.gpu_min_free_mb,
        "telemetry_interval": spec.telemetry_interval,
        "telemetry_max_points": spec.telemetry_max_points,
        "registry_login": settings.registry_login,
        "container": {
            "memory": limits.memory,
            "cpus": limits.cpus,
            "pids_limit": limits.pids,
            "shm_size": limits.shm_size,
            "user": settings.user,
            "network": "bridge" if limits.network else "none",
        },
    }
    return VmJob(document=document, secrets=secrets)


def job_pointer(stage_run_id: str, attempt: int, storage: Storage) -> str:
    """The ``goldfish-job`` metadata value that tells a VM which job.json to run."""
    uri = storage.uri(RunPaths(stage_run_id).job)
    return json.dumps({"stage_run_id": stage_run_id, "attempt": attempt, "job_uri": uri})


def bundle(spec: RunSpec) -> bytes:
    """``code/…``, ``config/config.json`` and ``config/signals.json`` as one gzip tarball.

    Only regular files and folders go in (a symlink in the code is refused at sync already);
    names are relative, so the agent can check every member before extracting.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        _add_tree(archive, spec.code_dir, PurePosixPath("code"))
        archive.add(spec.config_file.parent, arcname="config", recursive=False)
        _add_file(archive, spec.config_file, "config/config.json")
        _add_file(archive, spec.signals_file, "config/signals.json")
    return buffer.getvalue()


def _add_tree(archive: tarfile.TarFile, folder: Path, arcname: PurePosixPath) -> None:
    archive.add(folder, arcname=str(arcname), recursive=False)
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            continue
        name = str(arcname / path.relative_to(folder).as_posix())
        if path.is_dir():
            archive.add(path, arcname=name, recursive=False)
        elif path.is_file():
            _add_file(archive, path, name)


def _add_file(archive: tarfile.TarFile, path: Path, name: str) -> None:
    """Add ``path`` as a regular member, even when it is a hardlink.

    The code cache shares inodes, and the agent refuses link members.
    """
    stat = path.stat()
    info = tarfile.TarInfo(name)
    info.size = stat.st_size
    info.mode = stat.st_mode & 0o755 | 0o444
    info.mtime = int(stat.st_mtime)
    with path.open("rb") as data:
        archive.addfile(info, data)
