"""Backend selection: a name → builder table (a new backend is one package plus one line here)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from goldfish.backends.gce.config_check import GceNotConfiguredError, missing_gce_settings
from goldfish.backends.protocol import BackendSettings, RunBackend
from goldfish.config import GoldfishConfig
from goldfish.errors import InvalidArgumentError, suggestion_suffix

# "module:builder" of each backend, a builder being the class itself or a function that wires
# the backend's own collaborators once: its package loads when a stage first uses it (the MCP
# server's start-up loads none).
BACKENDS: dict[str, str] = {
    "process": "goldfish.backends.process.backend:ProcessBackend",
    "docker": "goldfish.backends.docker.backend:DockerBackend",
    "gce": "goldfish.backends.gce.assembly:build",
}


def available_backends() -> list[str]:
    """Names of the backends this build provides."""
    return sorted(BACKENDS)


def backend_builder(name: str) -> Callable[[BackendSettings], RunBackend]:
    """What builds backend ``name`` (its class, or its package's ``build``), its package imported now.

    Raises:
        InvalidArgumentError: ``name`` is not in the table (the valid names are in details).
    """
    module, _, attribute = BACKENDS[_known(name)].partition(":")
    loaded = getattr(importlib.import_module(module), attribute)
    return cast("Callable[[BackendSettings], RunBackend]", loaded)


def _known(name: str) -> str:
    if name not in BACKENDS:
        raise InvalidArgumentError(
            f"Backend '{name}' is not available{suggestion_suffix(name, BACKENDS)}.",
            details={"backend": name, "available": available_backends()},
            remedy="Use one of details.available in compute.backend or defaults.backend.",
        )
    return name


def resolve_backend_name(requested: str | None, default: str, config: GoldfishConfig) -> str:
    """The backend a stage runs on: its own ``compute.backend``, else the project default.

    ``auto`` picks docker when the Docker engine answers and has the configured base image
    (checked once per process, see ``docker_ready``), else process. An explicit ``docker`` or
    ``gce`` that cannot work here is refused at once instead of failing every stage.
    """
    from goldfish.backends.docker.doctor import docker_ready, require_ready  # noqa: PLC0415 - see BACKENDS

    name = requested or default
    if name == "auto":
        return "docker" if docker_ready(config.docker.base_image) else "process"
    _known(name)
    missing = missing_gce_settings(config) if name == "gce" else []
    if missing:
        raise GceNotConfiguredError(
            f"This stage runs on GCE, but goldfish.yaml lacks {', '.join(missing)}.",
            details={"backend": name, "missing": missing},
        )
    if name == "docker":
        require_ready(config.docker.base_image)
    return name


class BackendRegistry:
    """One instance per backend name per process (backends keep handles of their children)."""

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._instances: dict[str, RunBackend] = {}

    def get(self, name: str) -> RunBackend:
        """The backend called ``name``."""
        if name not in self._instances:
            self._instances[name] = backend_builder(name)(self._settings)
        return self._instances[name]
