"""Builds the Goldfish MCPServer: tools, resources, the prompt and the lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.context import CallNext, ServerMiddleware, ServerRequestContext
from mcp.server.context import HandlerResult as MiddlewareResult
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount

from goldfish import __version__
from goldfish.server.app_state import GoldfishApp
from goldfish.server.prompts import register_prompts
from goldfish.server.resources import register_resources
from goldfish.server.toolkit import ToolRegistry
from goldfish.server.tools import register_all

log = logging.getLogger("goldfish.server")

INSTRUCTIONS = """Goldfish runs ML experiments with perfect memory and provenance.
Start every session with status(): it shows the project, each slot (workspaces/<slot>), unsaved
changes and STATE.md. Edit plain files in a mounted slot; save_version records them as vN.
Every state-changing tool takes a reason: one sentence saying why. Errors come back as
{"success": false, "error": {"code", "message", "details", "remedy"}}: follow the remedy."""


# Load the project this long after start-up at the latest, even if no client request came.
WARM_UP_AFTER_SECONDS = 2.0
# ... and this long after the first answered request, so that its reply is sent first.
REPLY_FIRST_SECONDS = 0.05


class WarmUp:
    """Loads (and reconciles) the project once, after the client's first request past initialize.

    Loading is CPU work that would compete with answering the handshake and tools/list (one
    interpreter lock), so it starts when the first such request has been answered, or after
    :data:`WARM_UP_AFTER_SECONDS`; a tool call that comes before it is done waits for it.
    """

    def __init__(self, app: GoldfishApp):
        self._app = app
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Start loading in a daemon thread (once)."""
        with self._lock:
            if self._started or self._app.root is None:
                return
            self._started = True
        threading.Thread(target=self._app.warm_up, name="goldfish-warm-up", daemon=True).start()

    def start_after(self, seconds: float) -> None:
        """Start loading after ``seconds`` unless something started it first."""
        if self._started:
            return
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()

    def middleware(self) -> ServerMiddleware[Any]:
        """MCP middleware that starts loading once a request other than initialize is answered."""

        async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> MiddlewareResult:
            result = await call_next(ctx)
            # A notification (``notifications/initialized`` comes right after the handshake) is
            # no answered request: loading then would compete with the tools/list that follows.
            if ctx.method != "initialize" and not ctx.method.startswith("notifications/"):
                self.start_after(REPLY_FIRST_SECONDS)
            return result

        return middleware


def build_server(app: GoldfishApp) -> MCPServer[GoldfishApp]:
    """Create the MCP server for ``app`` (a project root, or none yet)."""
    registry = ToolRegistry(app)
    register_all(registry)
    warm_up = WarmUp(app)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[GoldfishApp]) -> AsyncIterator[GoldfishApp]:
        warm_up.start_after(WARM_UP_AFTER_SECONDS)
        # No close here: with streamable HTTP several sessions share the app; the CLI closes it at exit.
        yield app

    server: MCPServer[GoldfishApp] = MCPServer(
        name="goldfish",
        title="Goldfish",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=list(registry.tools.values()),
        lifespan=lifespan,
        middleware=[warm_up.middleware(), registry.call_middleware()],
    )
    register_resources(server, app)
    register_prompts(server)
    return server


def server_for(root: Path | None) -> MCPServer[GoldfishApp]:
    """Convenience: a server bound to the project at ``root`` (or to none)."""
    return build_server(GoldfishApp(root))


def http_app(app: GoldfishApp, host: str, token: str | None) -> Starlette:
    """Streamable HTTP at ``/mcp`` and the web dashboard at ``/`` (``goldfish serve --http``).

    The dashboard follows ``goldfish ui``'s rule: on a non-loopback address it is served only with
    a token; without one only ``/mcp`` is served there (and a warning says so).
    """
    from goldfish.web.app import build_dashboard, is_loopback  # noqa: PLC0415 - only HTTP serving needs it

    server = build_server(app)
    starlette_app = server.streamable_http_app(host=host)
    if token or is_loopback(host):
        dashboard = build_dashboard(lambda: app.context, token=token, loopback_only=not token)
        starlette_app.router.routes.append(Mount("/", app=dashboard))
    else:
        log.warning("dashboard not served on %s: set GOLDFISH_UI_TOKEN to serve it beside /mcp", host)
    return starlette_app
