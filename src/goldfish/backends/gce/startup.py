"""The VM-side files shipped through instance metadata: the bootstrap and the agent."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class StartupFiles:
    """``startup-script`` (bash bootstrap) and ``goldfish-agent`` (the Python agent) metadata values."""

    startup_script: str
    agent: str


@cache
def startup_files() -> StartupFiles:
    """Both files, read once from the installed package."""
    folder = resources.files("goldfish.backends.gce.vm")
    return StartupFiles(
        startup_script=(folder / "startup.sh").read_text(encoding="utf-8"),
        agent=(folder / "agent.py").read_text(encoding="utf-8"),
    )
