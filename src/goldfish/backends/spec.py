"""RunSpec: everything a backend needs to run one stage attempt, and the stage environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from goldfish.validation import is_secret_name


@dataclass(frozen=True)
class RunSpec:
    """One stage attempt, described for any backend.

    Paths are on this machine: the backend exposes ``inputs`` read-only and collects what the
    stage writes under ``outputs_dir``.
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

    @property
    def inputs_dir(self) -> Path:
        """Folder whose children are the input signals."""
        return self.run_dir / "inputs"

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
        return self.run_dir / "stop"

    @property
    def exit_code_file(self) -> Path:
        """Written by the stage wrapper when the stage exits."""
        return self.logs_dir / "exit_code.txt"

    def module_argv(self) -> list[str]:
        """The stage command after the interpreter."""
        return ["-m", f"modules.{self.module}"]


def stage_environment(spec: RunSpec, base: dict[str, str]) -> dict[str, str]:
    """The environment a stage sees: ``base`` + user env + the ``GOLDFISH_*`` locations."""
    env = dict(base)
    env.update(spec.env)
    env.update(
        {
            "GOLDFISH_RUN_ID": spec.stage_run_id,
            "GOLDFISH_STAGE": spec.stage,
            "GOLDFISH_WORKSPACE": spec.workspace,
            "GOLDFISH_INPUTS_DIR": str(spec.inputs_dir),
            "GOLDFISH_OUTPUTS_DIR": str(spec.outputs_dir),
            "GOLDFISH_CONFIG": str(spec.config_file),
            "GOLDFISH_SIGNALS": str(spec.signals_file),
            "GOLDFISH_METRICS_FILE": str(spec.metrics_file),
            "GOLDFISH_HEARTBEAT_FILE": str(spec.heartbeat_file),
            "GOLDFISH_STOP_FILE": str(spec.stop_file),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def redacted_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with secret-named values replaced, for manifests and logs."""
    return {key: ("***" if is_secret_name(key) else value) for key, value in env.items()}
