"""MCP tools, one module per area; each registers thin functions on a ToolRegistry."""

from goldfish.server.toolkit import ToolRegistry
from goldfish.server.tools import (
    analysis,
    backups,
    cloud,
    data,
    infra,
    memory,
    orientation,
    project,
    records,
    runs,
    secrets,
    svs,
    versions,
    workspaces,
)

AREAS = (
    orientation,
    project,
    workspaces,
    versions,
    runs,
    analysis,
    data,
    memory,
    records,
    backups,
    infra,
    cloud,
    svs,
    secrets,
)


def register_all(registry: ToolRegistry) -> None:
    """Register every tool area."""
    for area in AREAS:
        area.register(registry)
