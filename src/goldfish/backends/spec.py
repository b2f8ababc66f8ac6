"""RunSpec: everything a backend needs to run one stage attempt, and the stage environment.

Also the pieces every backend shares, so each exists once: the stage wrapper (a ``/bin/sh``
script that sends the stage's output to the log files and leaves its exit code in
``logs/exit_code.txt``), the ``GOLDFISH_*`` environment, the checks on user environment
variables, and reading a log file from an offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from goldfish.errors import InvalidArgumentError
from goldfish.io.masking import SECRET_NAMES_ENV
from goldfish.validation import SECRET_REMEDY, env_name_problem, env_problem, looks_like_secret

# The stage wrapper, one definition for every backend (process group, container, VM). It is
# the script of ``/bin/sh -c``: the stage's argv arrives as "$@" and is never interpolated into
# shell text. It appends stdout/stderr to $GOLDFISH_LOGS_DIR/{stdout,stderr}.log, ignores
# TERM/INT itself so that a polite cancel leaves it alive long enough to record the stage's
# exit code, and runs the stage in a subshell that restores the default handlers first (an
# ignored signal is inherited across exec, and a stage that ignored TERM could only ever be
# stopped by SIGKILL). The exit code is written to a temporary file and renamed, so a reader
# never sees half of it. A stage with secrets or telemetry starts through ``goldfish.io.runner``
# in the same interpreter ("$1"): it runs the module in its own interpreter, or as a child whose
# output it masks when the stage has secrets, has telemetry sampled, and after a stage that exited
# 0 summarises the outputs in place (SVS statistics: the data is read where it lies and only a
# small JSON travels; a failure there never fails the stage). Without the runner, the wrapper
# starts that summary itself (``goldfish.io.stats``, same interpreter) before writing the exit code.
STAGE_WRAPPER = (
    'exec >>"$GOLDFISH_LOGS_DIR/stdout.log" 2>>"$GOLDFISH_LOGS_DIR/stderr.log"; runner=; '
    'if [ -n "$GOLDFISH_SECRET_NAMES$GOLDFISH_TELEMETRY_INTERVAL" ]; then '
    'set -- "$1" -m goldfish.io.runner "$@"; runner=1; fi; '
    'trap "" TERM INT; (trap - TERM INT; exec "$@"); code=$?; '
    'if [ "$code" = 0 ] && [ -z "$runner" ]; then '
    '(trap - TERM INT; exec "$1" -m goldfish.io.stats) || true; fi; '
    'printf "%s" "$code" > "$GOLDFISH_EXIT_FILE.tmp" && mv "$GOLDFISH_EXIT_FILE.tmp" "$GOLDFISH_EXIT_FILE"; '
    "exit $code"
)
WRAPPER_NAME = "goldfish-stage"


def wrapped_command(argv: list[str]) -> list[str]:
    """The full command line of a stage: the wrapper with ``argv`` as its arguments."""
    return ["/bin/sh", "-c", STAGE_WRAPPER, WRAPPER_NAME, *argv]


@dataclass(frozen=True)
class RunSpec:
    """One stage attempt, described for any backend.

    Paths are on this machine: the backend exposes ``inputs`` read-only and collects what the
    stage writes under ``outputs_dir``. ``python`` is the interpreter on this machine (process
    backend); ``image`` the container image (docker, GCE), both filled in by ``prepare``.
    ``input_uris`` are the stored inputs' URIs (a VM fetches them itself), ``outputs`` the
    declared output signals, and ``avoid_zones`` the zones where an earlier attempt was preempted.
    ``env`` is the stage's plain environment (recorded); ``secrets`` its secret values, looked up
    at launch and never recorded; ``gpu_ids`` the local GPUs it was given (nvidia-smi indices).
    """

    stage_run_id: str
    workspace: str
    stage: str
    module: str
    code_dir: Path
    run_dir: Path
    inputs: dict[str, Path]
    outputs_dir: Path
    logs_dir: Path
    config_file: Path
    signals_file: Path
    timeout_seconds: int
    python: str
    profile: str | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    input_uris: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    avoid_zones: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    gpu_ids: tuple[int, ...] = ()
    telemetry_interval: float = 0
    telemetry_max_points: int = 2000

    @property
    def inputs_dir(self) -> Path:
        """Folder whose children are the input signals."""
        return self.run_dir / "inputs"

    @property
    def work_dir(self) -> Path:
        """The stage's working folder: empty, writable, its own (relative paths land here)."""
        return self.run_dir / "work"

    @property
    def control_dir(self) -> Path:
        """Folder Goldfish writes into while the stage runs (the stop file); read-only to the stage."""
        return self.run_dir / "control"

    @property
    def metrics_file(self) -> Path:
        """Where the runtime appends metric points."""
        return self.logs_dir / "metrics.jsonl"

    @property
    def heartbeat_file(self) -> Path:
        """Where the runtime writes its heartbeat."""
        return self.logs_dir / "heartbeat.json"

    @property
    def stop_file(self) -> Path:
        """Created by a cancel so ``should_stop()`` turns true."""
        return self.control_dir / "stop"

    @property
    def exit_code_file(self) -> Path:
        """Written by the stage wrapper when the stage exits."""
        return self.logs_dir / "exit_code.txt"

    def module_argv(self) -> list[str]:
        """The stage command after the interpreter."""
        return ["-m", f"modules.{self.module}"]


@dataclass(frozen=True)
class StageLocations:
    """Where the stage finds its files, as the stage sees them (host paths or container paths)."""

    code_dir: str
    work_dir: str
    inputs_dir: str
    outputs_dir: str
    config_file: str
    signals_file: str
    logs_dir: str
    metrics_file: str
    heartbeat_file: str
    exit_file: str
    stop_file: str

    @classmethod
    def on_host(cls, spec: RunSpec) -> StageLocations:
        """The spec's own paths (the process backend runs the stage on this machine)."""
        return cls(
            code_dir=str(spec.code_dir),
            work_dir=str(spec.work_dir),
            inputs_dir=str(spec.inputs_dir),
            outputs_dir=str(spec.outputs_dir),
            config_file=str(spec.config_file),
            signals_file=str(spec.signals_file),
            logs_dir=str(spec.logs_dir),
            metrics_file=str(spec.metrics_file),
            heartbeat_file=str(spec.heartbeat_file),
            exit_file=str(spec.exit_code_file),
            stop_file=str(spec.stop_file),
        )


def check_env(env: Mapping[str, str], secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """User environment variables then secret values, checked (``validation.env_problem``).

    Raises:
        InvalidArgumentError: naming the first offending key (never a secret's value).
    """
    checked: dict[str, str] = {}
    for key, value in env.items():
        problem = env_problem(key, value)
        if problem is not None:
            remedy = SECRET_REMEDY if looks_like_secret(str(key)) else "Rename or fix the variable."
            raise InvalidArgumentError(
                f"Environment variable not allowed: {problem}.",
                details={"field": "env", "key": str(key)[:80]},
                remedy=remedy,
            )
        checked[key] = value
    for key, value in (secrets or {}).items():
        problem = env_name_problem(key)
        if problem is not None or not isinstance(value, str) or "\x00" in value:
            raise InvalidArgumentError(
                f"Secret {str(key)[:80]!r} cannot reach the stage: {problem or 'its value is not text'}.",
                details={"field": "secrets", "key": str(key)[:80]},
            )
        checked[key] = value
    return checked


def stage_environment(
    spec: RunSpec, base: Mapping[str, str], where: StageLocations | None = None
) -> dict[str, str]:
    """The environment a stage sees: ``base`` + checked user env + the ``GOLDFISH_*`` locations.

    ``where`` says where the stage finds its files (default: the spec's paths on this machine).
    """
    where = where or StageLocations.on_host(spec)
    env = dict(base)
    env.update(check_env(spec.env, spec.secrets))
    env.update(runner_environment(spec))
    env.update(
        {
            "GOLDFISH_RUN_ID": spec.stage_run_id,
            "GOLDFISH_STAGE": spec.stage,
            "GOLDFISH_WORKSPACE": spec.workspace,
            "GOLDFISH_CODE_DIR": where.code_dir,
            "GOLDFISH_WORK_DIR": where.work_dir,
            "GOLDFISH_INPUTS_DIR": where.inputs_dir,
            "GOLDFISH_OUTPUTS_DIR": where.outputs_dir,
            "GOLDFISH_CONFIG": where.config_file,
            "GOLDFISH_SIGNALS": where.signals_file,
            "GOLDFISH_LOGS_DIR": where.logs_dir,
            "GOLDFISH_METRICS_FILE": where.metrics_file,
            "GOLDFISH_HEARTBEAT_FILE": where.heartbeat_file,
            "GOLDFISH_EXIT_FILE": where.exit_file,
            "GOLDFISH_STOP_FILE": where.stop_file,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def runner_environment(spec: RunSpec) -> dict[str, str]:
    """What the in-stage runner (``goldfish.io.runner``) reads: secret names to mask, telemetry, GPUs."""
    env: dict[str, str] = {}
    if spec.secrets:
        env[SECRET_NAMES_ENV] = ",".join(sorted(spec.secrets))
    if spec.telemetry_interval > 0:
        env["GOLDFISH_TELEMETRY_INTERVAL"] = f"{spec.telemetry_interval:g}"
        env["GOLDFISH_TELEMETRY_MAX_POINTS"] = str(spec.telemetry_max_points)
    if spec.gpu_ids:
        env["GOLDFISH_GPU_COUNT"] = str(len(spec.gpu_ids))
    return env


def read_log(logs_dir: Path, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
    """Text of ``logs_dir/<stream>.log`` from byte ``offset``, and the offset to continue from."""
    path = logs_dir / f"{stream}.log"
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)


def read_exit_code(logs_dir: Path) -> int | None:
    """The exit code the wrapper recorded, or None while there is none."""
    try:
        return int((logs_dir / "exit_code.txt").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
