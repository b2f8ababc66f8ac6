"""The one place a RunSpec becomes a container: command, mounts, environment, user, labels, limits.

:func:`container_invocation` is pure (no Docker, no files touched): the docker backend turns
its result into an SDK call, and the GCE paths (cold start and warm reuse) render the same
invocation as a ``docker run`` argv with :func:`docker_run_argv`. Nothing else decides what a
stage container looks like.

Mount layout (host path → container path):

=====================  ==================  ====  ==========================================
host                   container           mode  what
=====================  ==================  ====  ==========================================
``code_dir``           ``/mnt/code``       ro    the version's files (on ``PYTHONPATH``)
``run_dir/work``       ``/mnt/work``       rw    the working folder: empty scratch space
``run_dir/inputs``     ``/mnt/inputs``     ro    one child per input signal
``outputs_dir``        ``/mnt/outputs``    rw    one child per output signal
``logs_dir``           ``/mnt/logs``       rw    stdout/stderr logs, metrics, heartbeat, exit code
``config_file``        ``/mnt/config/config.json``   ro  the stage's effective config
``signals_file``       ``/mnt/config/signals.json``  ro  declared inputs and outputs
``control_dir``        ``/mnt/control``    ro    the stop file a cancel creates
=====================  ==================  ====  ==========================================

The goldfish runtime (``goldfish.io``) is part of the stage image, at :data:`RUNTIME_DIR`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from goldfish.backends.spec import RunSpec, StageLocations, stage_environment, wrapped_command
from goldfish.errors import GoldfishError, InvalidArgumentError

CODE_DIR = "/mnt/code"
WORK_DIR = "/mnt/work"
INPUTS_DIR = "/mnt/inputs"
OUTPUTS_DIR = "/mnt/outputs"
LOGS_DIR = "/mnt/logs"
CONFIG_DIR = "/mnt/config"
CONTROL_DIR = "/mnt/control"
RUNTIME_DIR = "/opt/goldfish-runtime"
INTERPRETER = "python3"
LABEL_PREFIX = "goldfish."
STAGE_RUN_LABEL = "goldfish.stage_run_id"
PROJECT_LABEL = "goldfish.project"
CONTAINER_UID = 1000  # the base image's ``goldfish`` user, used when the server runs as root

CONTAINER_LOCATIONS = StageLocations(
    code_dir=CODE_DIR,
    work_dir=WORK_DIR,
    inputs_dir=INPUTS_DIR,
    outputs_dir=OUTPUTS_DIR,
    config_file=f"{CONFIG_DIR}/config.json",
    signals_file=f"{CONFIG_DIR}/signals.json",
    logs_dir=LOGS_DIR,
    metrics_file=f"{LOGS_DIR}/metrics.jsonl",
    heartbeat_file=f"{LOGS_DIR}/heartbeat.json",
    exit_file=f"{LOGS_DIR}/exit_code.txt",
    stop_file=f"{CONTROL_DIR}/stop",
)


class ImageNotPreparedError(GoldfishError):
    """A container backend was asked to launch a spec that ``prepare`` never gave an image."""

    code = "IMAGE_NOT_PREPARED"
    default_remedy = "Run the stage again; if it repeats, report it: the stage skipped its image build."


IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")
"""An image reference we pass on: no options, no whitespace."""
_USER = re.compile(r"^[0-9]{1,10}(:[0-9]{1,10})?$")
_MEMORY = re.compile(r"^[1-9][0-9]*[kmgKMG]?$")


def project_label(root: Path) -> str:
    """A short, stable name of the project for the ``goldfish.project`` container label."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Mount:
    """A bind mount: a host path seen at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class Limits:
    """Resources and isolation of a stage container.

    ``memory`` and ``cpus`` None mean no cap (a VM's container takes the whole machine);
    ``shm_size`` None keeps the engine's default ``/dev/shm`` (64 MB). ``gpu_devices`` names the
    host GPUs (nvidia-smi indices) a local container gets; without them it gets ``gpus`` of any.
    """

    memory: str | None = "4g"
    cpus: float | None = 2.0
    pids: int = 512
    network: bool = True
    gpus: int = 0
    shm_size: str | None = None
    gpu_devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerInvocation:
    """Everything a container runtime needs to start one stage attempt."""

    name: str
    image: str
    command: list[str]
    mounts: list[Mount]
    env: dict[str, str]
    user: str
    workdir: str
    labels: dict[str, str]
    limits: Limits
    security: list[str] = field(default_factory=lambda: ["no-new-privileges"])
    cap_drop: list[str] = field(default_factory=lambda: ["ALL"])


def container_name(stage_run_id: str) -> str:
    """The container's name: one per stage run (a new attempt replaces the old container)."""
    return f"goldfish-{stage_run_id}"


def container_invocation(
    spec: RunSpec,
    *,
    image: str,
    user: str,
    limits: Limits,
    project: str,
) -> ContainerInvocation:
    """The container of one stage attempt, built from its RunSpec alone.

    Args:
        spec: The attempt (host paths).
        image: The stage image (base + requirements layer + goldfish runtime).
        user: ``uid`` or ``uid:gid`` the stage runs as; never root.
        limits: Memory, CPUs, pids, network and GPUs.
        project: Label value naming the project, so reconciliation finds only its own containers.

    Raises:
        InvalidArgumentError: for an image, user, limit, input name or env key that is not allowed.
    """
    _check(image, user, limits)
    mounts = [
        _bind(spec.code_dir, CODE_DIR, read_only=True),
        _bind(spec.work_dir, WORK_DIR, read_only=False),
        _bind(spec.inputs_dir, INPUTS_DIR, read_only=True),
        _bind(spec.outputs_dir, OUTPUTS_DIR, read_only=False),
        _bind(spec.logs_dir, LOGS_DIR, read_only=False),
        _bind(spec.config_file, CONTAINER_LOCATIONS.config_file, read_only=True),
        _bind(spec.signals_file, CONTAINER_LOCATIONS.signals_file, read_only=True),
        _bind(spec.control_dir, CONTROL_DIR, read_only=True),
    ]
    base = {
        "HOME": "/tmp",  # noqa: S108 - the container's own /tmp; any uid can write there
        "PYTHONPATH": f"{CODE_DIR}:{RUNTIME_DIR}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env = stage_environment(spec, base, CONTAINER_LOCATIONS)
    labels = {
        STAGE_RUN_LABEL: spec.stage_run_id,
        PROJECT_LABEL: project,
        f"{LABEL_PREFIX}workspace": spec.workspace,
        f"{LABEL_PREFIX}stage": spec.stage,
        f"{LABEL_PREFIX}attempt": str(spec.attempt),
    }
    return ContainerInvocation(
        name=container_name(spec.stage_run_id),
        image=image,
        command=wrapped_command([INTERPRETER, *spec.module_argv()]),
        mounts=mounts,
        env=env,
        user=user,
        workdir=WORK_DIR,
        labels=labels,
        limits=limits,
    )


def _check(image: str, user: str, limits: Limits) -> None:
    if not IMAGE_REF.fullmatch(image):
        raise InvalidArgumentError(
            f"Image name {image[:100]!r} is not allowed.",
            details={"field": "image", "image": image[:100]},
            remedy="Use a plain image reference such as goldfish-base:latest.",
        )
    if not _USER.fullmatch(user) or user.split(":", maxsplit=1)[0] == "0":
        raise InvalidArgumentError(
            f"Stage containers run as a numeric non-root user, not {user[:40]!r}.",
            details={"field": "user", "user": user[:40]},
            remedy="Use uid or uid:gid other than 0.",
        )
    sizes_ok = all(size is None or _MEMORY.fullmatch(size) for size in (limits.memory, limits.shm_size))
    devices_ok = all(device.isdigit() for device in limits.gpu_devices)
    if (
        not sizes_ok
        or not devices_ok
        or (limits.cpus is not None and limits.cpus <= 0)
        or limits.pids < 1
        or limits.gpus < 0
    ):
        raise InvalidArgumentError(
            "Container limits are out of range.",
            details={"field": "limits", "limits": vars(limits)},
            remedy="Fix docker.memory, docker.cpus and docker.pids_limit in goldfish.yaml.",
        )


def _bind(source: object, target: str, *, read_only: bool) -> Mount:
    path = str(source)
    if not path.startswith("/") or "\x00" in path or "\n" in path:
        raise InvalidArgumentError(
            "Mount sources must be absolute paths without NUL or newline characters.",
            details={"field": "mount", "source": path[:200]},
        )
    return Mount(source=path, target=str(PurePosixPath(target)), read_only=read_only)


def memory_bytes(memory: str) -> int:
    """``4g`` → bytes (the docker SDK and ``docker run`` both accept the string; the API wants bytes)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    suffix = memory[-1].lower()
    return int(memory[:-1]) * units[suffix] if suffix in units else int(memory)


def _csv_field(text: str) -> str:
    """One field of ``--mount``'s comma-separated value, quoted when it must be."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def docker_run_argv(
    invocation: ContainerInvocation, *, detach: bool = True, pass_through: Collection[str] = ()
) -> list[str]:
    """The invocation as a ``docker run`` argv (for the GCE VM agent and for people).

    Every user-controlled value is its own argv element; mount fields are CSV-quoted as
    ``--mount`` parses them. Nothing passes through a shell. Variables named in
    ``pass_through`` appear as a bare ``--env NAME``: docker takes their values from the
    environment of the process that runs the argv, so secrets never appear in it.
    """
    argv = ["docker", "run"]
    if detach:
        argv.append("--detach")
    argv += ["--name", invocation.name, "--user", invocation.user, "--workdir", invocation.workdir]
    argv += _limit_options(invocation.limits)
    for option in invocation.security:
        argv += ["--security-opt", option]
    for capability in invocation.cap_drop:
        argv += ["--cap-drop", capability]
    for mount in invocation.mounts:
        fields = ["type=bind", f"source={mount.source}", f"target={mount.target}"]
        if mount.read_only:
            fields.append("readonly")
        argv += ["--mount", ",".join(_csv_field(item) for item in fields)]
    for key, value in _sorted(invocation.labels):
        argv += ["--label", f"{key}={value}"]
    for key, value in _sorted(invocation.env):
        argv += ["--env", key if key in pass_through else f"{key}={value}"]
    return [*argv, "--", invocation.image, *invocation.command]


def _limit_options(limits: Limits) -> list[str]:
    """The ``docker run`` options of ``limits`` (a None cap is no option at all)."""
    options = [
        ("--memory", limits.memory),
        ("--cpus", None if limits.cpus is None else f"{limits.cpus:g}"),
        ("--pids-limit", str(limits.pids)),
        ("--shm-size", limits.shm_size),
        ("--network", None if limits.network else "none"),
        ("--gpus", _gpus_option(limits)),
    ]
    return [item for name, value in options if value is not None for item in (name, value)]


def _gpus_option(limits: Limits) -> str | None:
    """``--gpus`` value: ``"device=0,1"`` (quoted: docker reads the option as CSV) or a count."""
    if limits.gpu_devices:
        return _csv_field("device=" + ",".join(limits.gpu_devices))
    return str(limits.gpus) if limits.gpus else None


def _sorted(mapping: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(mapping.items())
