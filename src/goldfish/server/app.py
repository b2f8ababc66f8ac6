"""Builds the Goldfish MCPServer: tools, resources, the prompt and the lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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


def build_server(app: GoldfishApp) -> MCPServer[GoldfishApp]:
    """Create the MCP server for ``app`` (a project root, or none yet)."""
    registry = ToolRegistry(app)
    register_all(registry)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[GoldfishApp]) -> AsyncIterator[GoldfishApp]:
        if app.root is not None:
            # Load (and reconcile) the project beside the handshake, not before it: the first tool
            # call waits for it if it is not done yet.
            threading.Thread(target=app.warm_up, name="goldfish-warm-up", daemon=True).start()
        # No close here: with streamable HTTP several sessions share the app; the CLI closes it at exit.
        yield app

    server: MCPServer[GoldfishApp] = MCPServer(
        name="goldfish",
        title="Goldfish",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=list(registry.tools.values()),
        lifespan=lifespan,
        middleware=[registry.call_middleware()],
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
