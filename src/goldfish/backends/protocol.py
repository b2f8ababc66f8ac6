"""The RunBackend protocol: one interface for process, docker and GCE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from goldfish.backends.spec import RunSpec

Handle = dict[str, Any]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared as data."""

    gpu: bool
    isolation: Literal["process", "container", "vm"]
    survives_server_restart: bool


@dataclass(frozen=True)
class BackendStatus:
    """What the backend knows about an attempt."""

    state: Literal["running", "exited", "lost"]
    exit_code: int | None = None
    detail: str | None = None


class RunBackend(Protocol):
    """Launches stage attempts and reports on them; every method takes the handle ``launch`` returned."""

    name: str
    capabilities: Capabilities

    def launch(self, spec: RunSpec) -> Handle:
        """Start the attempt; return a JSON-able handle that lets any process find it again."""

    def status(self, handle: Handle) -> BackendStatus:
        """Running, exited (with its code) or lost."""

    def logs(self, handle: Handle, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        """Log text from byte ``offset`` and the offset to continue from."""

    def cancel(self, handle: Handle, grace_seconds: float = 5.0) -> None:
        """Stop the attempt (politely, then by force); idempotent."""

    def cleanup(self, handle: Handle) -> None:
        """Release what the attempt held (scratch files, containers)."""
