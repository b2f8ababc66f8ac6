"""The server's hold on its project: loaded lazily, swapped on init or reload."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from goldfish.errors import GoldfishError, InvalidPathError, ProjectExistsError, ProjectNotFoundError

if TYPE_CHECKING:
    from goldfish.context import ServerContext
    from goldfish.project import InitResult

log = logging.getLogger("goldfish.server")


class GoldfishApp:
    """Holds the :class:`ServerContext` of the project this server serves, if any.

    Args:
        root: The project root, or None when the server starts outside a project (then
            ``initialize_project`` creates one and binds the server to it).
    """

    def __init__(self, root: Path | None):
        self.root = root
        self._context: ServerContext | None = None
        self._lock = threading.Lock()

    @property
    def context(self) -> ServerContext:
        """The loaded project.

        Raises:
            ProjectNotFoundError: when no project is bound yet.
        """
        with self._lock:
            if self._context is None:
                if self.root is None:
                    raise ProjectNotFoundError("This server is not attached to a Goldfish project yet.")
                from goldfish.context import ServerContext  # noqa: PLC0415 - loaded beside the handshake

                self._context = ServerContext.open(self.root)
                self._context.startup()
            return self._context

    def warm_up(self) -> None:
        """Load the project now (startup reconciliation included); errors surface on the first call."""
        try:
            self.context  # noqa: B018 - the property loads it
        except GoldfishError as exc:
            log.error("project at %s could not be loaded: %s", self.root, exc.message)
        except Exception:
            log.exception("project at %s could not be loaded", self.root)

    def loaded_context(self) -> ServerContext | None:
        """The context if one is loaded, without loading it."""
        return self._context

    def initialize(self, project_root: str, project_name: str, from_existing: bool) -> InitResult:
        """Create a project and bind the server to it (only one project per server)."""
        if "\x00" in project_root:  # Path.resolve() raises ValueError on NUL: refuse it as bad input
            raise InvalidPathError(
                "project_root must not contain NUL characters.", details={"field": "project_root"}
            )
        if self.root is not None and Path(project_root).expanduser().resolve() != self.root.resolve():
            raise ProjectExistsError(
                f"This server already serves the project at {self.root}.",
                details={"project_root": str(self.root)},
                remedy="Start another `goldfish serve` in the new project's folder to work there.",
            )
        from goldfish.project import initialize_project  # noqa: PLC0415 - the config parser loads at first use

        result = initialize_project(project_root, project_name, from_existing)
        with self._lock:
            if self._context is not None:
                self._context.close()
            self.root = Path(result.project_root)
            self._context = None
        self.context.state.write()
        return result

    def reload(self) -> ServerContext:
        """Re-read goldfish.yaml; the old context stays in use if the new config is invalid."""
        if self.root is None:
            raise ProjectNotFoundError("This server is not attached to a Goldfish project yet.")
        from goldfish.context import ServerContext  # noqa: PLC0415 - see context

        fresh = ServerContext.open(self.root)
        with self._lock:
            # The old context is not closed: a call on another thread may still be using it.
            self._context = fresh
        fresh.state.write()
        return fresh

    def refresh_state(self) -> None:
        """Regenerate STATE.md after a state change (never fails the call that caused it)."""
        context = self._context
        if context is not None:
            context.refresh_state()

    def close(self) -> None:
        """Release the project's resources."""
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None
