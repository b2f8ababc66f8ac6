"""The agent's exceptions, and how a command's output is shortened for a failure reason."""

from __future__ import annotations


class AgentFailure(Exception):
    """A failure around the stage: reported as ``failure.json`` with kind ``infra_error``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobRefused(AgentFailure):
    """A job (or pointer, or warm config) that fails validation: it is never executed."""


class UnsafeFile(AgentFailure):
    """A path the agent will not read or upload (a link, a device, a FIFO)."""


class HttpError(AgentFailure):
    """An HTTP request that did not succeed; ``status`` is 0 for connection errors."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class TransientError(HttpError):
    """A 5xx, 429 or connection error: worth retrying."""


class Preempted(Exception):
    """Raised on the job's thread once the preemption watcher has taken over."""


def tail(text: str, limit: int = 800) -> str:
    """The end of ``text`` (at most ``limit`` characters), for a failure reason."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
