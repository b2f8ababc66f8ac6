"""Builds the Goldfish MCPServer: tools, resources, the prompt and the lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp.server.mcpserver import MCPServer

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
