"""Backend selection: a name → class table (a new backend is one module plus one line here)."""

from __future__ import annotations

from collections.abc import Callable

from goldfish.backends.process import ProcessBackend
from goldfish.backends.protocol import RunBackend
from goldfish.errors import InvalidArgumentError, suggestion_suffix

_FACTORIES: dict[str, Callable[[], RunBackend]] = {
    "process": ProcessBackend,
}


def available_backends() -> list[str]:
    """Names of the backends this build provides."""
    return sorted(_FACTORIES)


def resolve_backend_name(requested: str | None, default: str) -> str:
    """The backend a stage runs on: its own ``compute.backend``, else the project default.

    ``auto`` picks the best backend that is available here (the process backend until the
    container backend lands).
    """
    name = requested or default
    if name == "auto":
        return "process"
    if name not in _FACTORIES:
        raise InvalidArgumentError(
            f"Backend '{name}' is not available{suggestion_suffix(name, _FACTORIES)}.",
            details={"backend": name, "available": available_backends()},
            remedy="Use one of details.available in compute.backend or defaults.backend.",
        )
    return name


class BackendRegistry:
    """One instance per backend name per process (backends keep handles of their children)."""

    def __init__(self) -> None:
        self._instances: dict[str, RunBackend] = {}

    def get(self, name: str) -> RunBackend:
        """The backend called ``name``."""
        if name not in self._instances:
            resolve_backend_name(name, name)
            self._instances[name] = _FACTORIES[name]()
        return self._instances[name]
