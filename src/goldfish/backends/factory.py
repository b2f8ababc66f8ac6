"""Backend selection: a name → class table (a new backend is one module plus one line here)."""

from __future__ import annotations

from collections.abc import Callable

from goldfish.backends.gce.config_check import GceNotConfiguredError, missing_gce_settings
from goldfish.backends.protocol import BackendSettings, RunBackend
from goldfish.config import GoldfishConfig
from goldfish.errors import InvalidArgumentError, suggestion_suffix

# Each backend's module loads when a stage first uses it (the MCP server's start-up loads none).


def _process(settings: BackendSettings) -> RunBackend:
    from goldfish.backends.process import ProcessBackend  # noqa: PLC0415

    return ProcessBackend(settings)


def _docker(settings: BackendSettings) -> RunBackend:
    from goldfish.backends.docker import DockerBackend  # noqa: PLC0415

    return DockerBackend(settings)


def _gce(settings: BackendSettings) -> RunBackend:
    from goldfish.backends.gce.backend import GceBackend  # noqa: PLC0415 - only projects on GCE load it

    return GceBackend(settings)


_FACTORIES: dict[str, Callable[[BackendSettings], RunBackend]] = {
    "process": _process,
    "docker": _docker,
    "gce": _gce,
}
_NEEDS_ENGINE = {"docker"}


def available_backends() -> list[str]:
    """Names of the backends this build provides."""
    return sorted(_FACTORIES)


def _known(name: str) -> str:
    if name not in _FACTORIES:
        raise InvalidArgumentError(
            f"Backend '{name}' is not available{suggestion_suffix(name, _FACTORIES)}.",
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
    from goldfish.backends.docker_images import (  # noqa: PLC0415 - see _FACTORIES
        DockerUnavailableError,
        docker_readiness,
        docker_ready,
    )

    docker_base_image = config.docker.base_image
    name = requested or default
    if name == "auto":
        return "docker" if docker_ready(docker_base_image) else "process"
    _known(name)
    missing = missing_gce_settings(config) if name == "gce" else []
    if missing:
        raise GceNotConfiguredError(
            f"This stage runs on GCE, but goldfish.yaml lacks {', '.join(missing)}.",
            details={"backend": name, "missing": missing},
        )
    if name in _NEEDS_ENGINE and not docker_ready(docker_base_image):
        readiness = docker_readiness(docker_base_image)  # what exactly is missing, asked afresh
        if readiness.ready:
            return name
        raise DockerUnavailableError(
            f"Backend 'docker' was asked for, but {readiness.detail}",
            details={"backend": name, "base_image": docker_base_image, "missing": readiness.missing},
            remedy=f"{readiness.fix} — or use compute.backend: process. `goldfish doctor` shows the rest.",
        )
    return name


class BackendRegistry:
    """One instance per backend name per process (backends keep handles of their children)."""

    def __init__(self, settings: BackendSettings) -> None:
        self._settings = settings
        self._instances: dict[str, RunBackend] = {}

    def get(self, name: str) -> RunBackend:
        """The backend called ``name``."""
        if name not in self._instances:
            self._instances[name] = _FACTORIES[_known(name)](self._settings)
        return self._instances[name]
