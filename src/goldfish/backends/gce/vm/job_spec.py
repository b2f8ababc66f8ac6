"""job.json and the other metadata values, validated completely before anything of them is used."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AgentFailure, JobRefused
from .layout import JOB_ROOT, SCHEMA_VERSION, is_under
from .storage import parse_gs_uri

DEFAULT_GPU_WAIT_SECONDS = 600.0
MAX_WARM_IDLE_SECONDS = 7 * 24 * 3600
_STAGE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_SIGNAL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")
REQUIRED_LOGS = ("stdout", "stderr", "metrics", "exit_code", "heartbeat", "ack", "failure", "preempted")
OPTIONAL_LOGS = ("stage_heartbeat", "svs_stats")
# Options a job's docker run may never carry (the server's builder never emits them).
FORBIDDEN_DOCKER_OPTIONS = (
    "--privileged",
    "--cap-add",
    "--device",
    "--volume",
    "-v",
    "--volumes-from",
    "--detach",
    "-d",
    "--pid",
    "--userns",
)


@dataclass(frozen=True)
class InputSpec:
    """One input to stage: ``dir`` (every object under a prefix) or ``file`` (one object)."""

    name: str
    uri: str
    kind: str


@dataclass(frozen=True)
class Job:
    """A validated job.json: everything the agent does for one attempt."""

    stage_run_id: str
    attempt: int
    image: str
    docker_run: tuple[str, ...]
    container_name: str
    job_dir: str
    bundle_uri: str | None
    secrets_uri: str | None
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    outputs_uri: str
    logs: dict[str, str]
    log_sync_interval: float
    timeout_seconds: int | None
    gpu_count: int
    gpu_wait_seconds: float
    registry_login: str | None = None
    gpu_min_free_mb: float = 0.0
    telemetry_interval: float = 0.0
    telemetry_max_points: int = 2000


@dataclass(frozen=True)
class JobPointer:
    """The ``goldfish-job`` metadata value: which job to run and where its job.json is."""

    stage_run_id: str
    attempt: int
    job_uri: str

    @property
    def key(self) -> tuple[str, int]:
        """What makes a job the same job: ``(stage_run_id, attempt)``."""
        return self.stage_run_id, self.attempt


@dataclass(frozen=True)
class WarmConfig:
    """The ``goldfish-warm`` metadata value of a warm-pool VM."""

    idle_timeout_seconds: float
    state_uri: str | None


def _text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise JobRefused(f"{key} is missing or not allowed: {str(value)[:100]!r}")
    return value


def _optional_text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    return None if raw.get(key) is None else _text(raw, key, pattern)


def _integer(raw: Mapping[str, Any], key: str, *, minimum: int, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise JobRefused(f"{key} must be an integer >= {minimum}, not {str(value)[:40]!r}")
    return value


def _number(raw: Mapping[str, Any], key: str, *, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise JobRefused(f"{key} must be a number in [{low:g}, {high:g}], not {str(value)[:40]!r}")
    return float(value)


def _uri(value: object, what: str) -> str:
    try:
        parse_gs_uri(value)
    except JobRefused as exc:
        raise JobRefused(f"{what}: {exc.reason}") from exc
    return str(value)


def _optional_uri(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else _uri(value, key)


def _check_job_dir(value: object, root: str, stage_run_id: str, attempt: int) -> str:
    expected = f"{root.rstrip('/')}/{stage_run_id}/a{attempt}"
    if not isinstance(value, str) or "\x00" in value or ".." in value.split("/"):
        raise JobRefused(f"job_dir is not allowed: {str(value)[:200]!r}")
    if value != expected:
        raise JobRefused(f"job_dir must be {expected!r}, not {value[:200]!r}")
    return value


def _mount_sources(value: str) -> list[str]:
    fields = next(csv.reader([value]), [])
    return [field.split("=", 1)[1] for field in fields if field.split("=", 1)[0] in ("source", "src")]


def _option_problem(option: str, value: str | None, directory: str) -> str | None:
    name = option.split("=", 1)[0]
    if name in FORBIDDEN_DOCKER_OPTIONS:
        return f"docker_run may not use {name}"
    given = option.partition("=")[2] if "=" in option else (value or "")
    if name in ("--network", "--net") and given == "host":
        return "docker_run may not use the host network"
    if name in ("--user", "-u") and given.split(":", 1)[0] in ("0", "root", ""):
        return "docker_run may not run the container as root"
    if name == "--security-opt" and "unconfined" in given:
        return "docker_run may not lift the seccomp/AppArmor confinement"
    if name == "--mount":
        sources = _mount_sources(given)
        outside = [source for source in sources if not is_under(source, directory)]
        if outside:
            return f"docker_run mounts {outside[0][:200]!r}, which is outside job_dir"
    return None


def _check_docker_run(value: object, image: str, container_name: str, directory: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not all(isinstance(item, str) and "\x00" not in item for item in value)
        or value[:2] != ["docker", "run"]
    ):
        raise JobRefused("docker_run must be a list of strings starting with 'docker', 'run'")
    argv: list[str] = value
    if "--" not in argv or argv.index("--") + 1 >= len(argv) or argv[argv.index("--") + 1] != image:
        raise JobRefused("docker_run must end with '--', the job's image and the command")
    options = argv[2 : argv.index("--")]
    names = [options[i + 1] for i, item in enumerate(options[:-1]) if item == "--name"]
    if names != [container_name]:
        raise JobRefused("docker_run must name its container container_name (one --name)")
    for index, option in enumerate(options):
        following = options[index + 1] if index + 1 < len(options) else None
        problem = _option_problem(option, following, directory) if option.startswith("-") else None
        if problem:
            raise JobRefused(problem)
    return tuple(argv)


def _check_inputs(value: object) -> tuple[InputSpec, ...]:
    if not isinstance(value, list):
        raise JobRefused("inputs must be a list")
    inputs: list[InputSpec] = []
    for item in value:
        if not isinstance(item, dict):
            raise JobRefused("each input must be an object")
        name = _text(item, "name", _SIGNAL)
        kind = item.get("kind", "dir")
        if kind not in ("dir", "file"):
            raise JobRefused(f"input {name}: kind must be 'dir' or 'file'")
        inputs.append(InputSpec(name=name, uri=_uri(item.get("uri"), f"input {name}"), kind=kind))
    if len({spec.name for spec in inputs}) != len(inputs):
        raise JobRefused("input names must be unique")
    return tuple(inputs)


def _check_outputs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and _SIGNAL.fullmatch(item) for item in value
    ):
        raise JobRefused("outputs must be a list of signal names")
    if len(set(value)) != len(value):
        raise JobRefused("output names must be unique")
    return tuple(value)


def _check_logs(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobRefused("logs must be an object of URIs")
    missing = [key for key in REQUIRED_LOGS if key not in value]
    if missing:
        raise JobRefused(f"logs lacks {', '.join(missing)}")
    return {
        str(key): _uri(uri, f"logs.{key}")
        for key, uri in value.items()
        if key in REQUIRED_LOGS or key in OPTIONAL_LOGS
    }


def validate_job(raw: object, root: str = JOB_ROOT) -> Job:
    """Check a parsed job.json completely before anything of it is used.

    Args:
        raw: The parsed JSON.
        root: The folder every job folder must be in (``JOB_ROOT`` unless a sandbox overrides it).

    Raises:
        JobRefused: naming the first problem.
    """
    if not isinstance(raw, dict):
        raise JobRefused("job.json is not a JSON object")
    if raw.get("schema_version") != SCHEMA_VERSION or isinstance(raw.get("schema_version"), bool):
        raise JobRefused(f"unsupported schema_version {str(raw.get('schema_version'))[:20]!r}")
    stage_run_id = _text(raw, "stage_run_id", _STAGE_RUN_ID)
    attempt = _integer(raw, "attempt", minimum=1)
    image = _text(raw, "image", _IMAGE)
    directory = _check_job_dir(raw.get("job_dir"), root, stage_run_id, attempt)
    container_name = _text(raw, "container_name", _CONTAINER_NAME)
    outputs_uri = _uri(raw.get("outputs_uri"), "outputs_uri")
    timeout = raw.get("timeout_seconds")
    return Job(
        stage_run_id=stage_run_id,
        attempt=attempt,
        image=image,
        docker_run=_check_docker_run(raw.get("docker_run"), image, container_name, directory),
        container_name=container_name,
        job_dir=directory,
        bundle_uri=_optional_uri(raw, "bundle_uri"),
        secrets_uri=_optional_uri(raw, "secrets_uri"),
        inputs=_check_inputs(raw.get("inputs", [])),
        outputs=_check_outputs(raw.get("outputs", [])),
        outputs_uri=outputs_uri if outputs_uri.endswith("/") else outputs_uri + "/",
        logs=_check_logs(raw.get("logs")),
        log_sync_interval=_number(raw, "log_sync_interval", default=10, low=0.1, high=3600),
        timeout_seconds=None if timeout is None else _integer(raw, "timeout_seconds", minimum=1),
        gpu_count=_integer(raw, "gpu_count", minimum=0, default=0),
        gpu_wait_seconds=_number(raw, "gpu_wait_seconds", default=DEFAULT_GPU_WAIT_SECONDS, low=0, high=7200),
        registry_login=_optional_text(raw, "registry_login", _REGISTRY_HOST),
        gpu_min_free_mb=_number(raw, "gpu_min_free_mb", default=0, low=0, high=10_000_000),
        telemetry_interval=_number(raw, "telemetry_interval", default=0, low=0, high=3600),
        telemetry_max_points=_integer(raw, "telemetry_max_points", minimum=1, default=2000),
    )


def failure_uri(raw: object) -> str | None:
    """The ``logs.failure`` URI of a (possibly invalid) job.json, if it alone is valid."""
    logs = raw.get("logs") if isinstance(raw, dict) else None
    uri = logs.get("failure") if isinstance(logs, dict) else None
    try:
        parse_gs_uri(uri)
    except JobRefused:
        return None
    return str(uri)


def _json_object_of(text: str, what: str) -> dict[str, object]:
    """``text`` parsed as a JSON object.

    Raises:
        JobRefused: naming ``what`` when it is not JSON or not an object.
    """
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise JobRefused(f"{what} is not JSON") from exc
    if not isinstance(raw, dict):
        raise JobRefused(f"{what} is not a JSON object")
    return raw


def parse_job_pointer(text: str) -> JobPointer:
    """The ``goldfish-job`` value, checked.

    Raises:
        JobRefused: when it is not ``{"stage_run_id", "attempt", "job_uri"}`` with valid values.
    """
    raw = _json_object_of(text, "goldfish-job")
    return JobPointer(
        stage_run_id=_text(raw, "stage_run_id", _STAGE_RUN_ID),
        attempt=_integer(raw, "attempt", minimum=1),
        job_uri=_uri(raw.get("job_uri"), "job_uri"),
    )


def parse_warm_config(text: str | None) -> WarmConfig | None:
    """The ``goldfish-warm`` value (None when absent).

    Raises:
        JobRefused: when present but not ``{"idle_timeout_seconds", "state_uri"}`` with valid values.
    """
    if text is None:
        return None
    raw = _json_object_of(text, "goldfish-warm")
    idle = _number(raw, "idle_timeout_seconds", default=-1, low=1, high=MAX_WARM_IDLE_SECONDS)
    return WarmConfig(idle_timeout_seconds=idle, state_uri=_optional_uri(raw, "state_uri"))


def parse_secrets(data: bytes) -> dict[str, str]:
    """The secrets object ``{NAME: value}`` (values never appear in an error message).

    Raises:
        AgentFailure: when it is not a JSON object of environment names to text.
    """
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise AgentFailure("the secrets object is not JSON") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and _ENV_NAME.fullmatch(key) and isinstance(value, str) and "\x00" not in value
        for key, value in raw.items()
    ):
        raise AgentFailure("the secrets object must map environment variable names to text")
    return dict(raw)


# -- local files -------------------------------------------------------------------------------
