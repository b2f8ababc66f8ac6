"""The RunBackend protocol: one interface for process, docker and GCE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from goldfish.backends.spec import RunSpec
from goldfish.config import GoldfishConfig

if TYPE_CHECKING:
    from goldfish.db.images import ImageBuildRepository
    from goldfish.db.warm_pool import WarmPoolRepository
    from goldfish.storage.protocol import Storage

Handle = dict[str, Any]
OnBuild = Callable[[str], None]
"""Called by ``prepare`` (with a short description) just before it starts a slow build."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared as data."""

    gpu: bool
    isolation: Literal["process", "container", "vm"]
    survives_server_restart: bool


@dataclass(frozen=True)
class BackendStatus:
    """What the backend knows about an attempt.

    ``preempted`` and ``infra_error`` end the attempt, not the stage: the executor tries again
    (bounded by ``defaults.max_attempts``).
    """

    state: Literal["running", "exited", "lost", "preempted", "infra_error"]
    exit_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class BackendSettings:
    """What a backend is built with: the project's config and where it keeps things."""

    config: GoldfishConfig
    project_root: Path
    venvs: Path
    locks: Path
    builds: ImageBuildRepository | None = None
    storage: Storage | None = None
    warm_pool: WarmPoolRepository | None = None


class RunBackend(Protocol):
    """Launches stage attempts and reports on them; every method takes the handle ``launch`` returned."""

    name: str
    capabilities: Capabilities

    def prepare(self, spec: RunSpec, on_build: OnBuild) -> RunSpec:
        """Build or reuse what the attempt runs in (venv, image); return the spec that uses it."""

    def launch(self, spec: RunSpec) -> Handle:
        """Start the attempt; return a JSON-able handle that lets any process find it again."""

    def find(self, stage_run_id: str) -> Handle | None:
        """The handle of an attempt started for ``stage_run_id`` whose handle was never recorded."""

    def status(self, handle: Handle) -> BackendStatus:
        """Running, exited (with its code) or lost."""

    def logs(self, handle: Handle, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        """Log text from byte ``offset`` and the offset to continue from."""

    def cancel(self, handle: Handle, grace_seconds: float = 5.0) -> None:
        """Stop the attempt (politely, then by force); idempotent."""

    def cleanup(self, handle: Handle) -> None:
        """Release what the attempt held (scratch files, containers)."""
