"""Fixtures of the docker-backend tests: the engine, a docker-backed project, an MCP session on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.docker_support import containers_removed_at_exit, require_docker
from tests.integration.docker_backend.backend_support import docker_project
from tests.integration.pipeline_fixtures import reaped_at_exit


@pytest.fixture
def engine() -> Any:
    """A docker client (skips, or fails under CI=true, without a usable engine)."""
    return require_docker()


@pytest.fixture
def docker_root(tmp_path: Path, engine: Any) -> Iterator[Path]:
    """A docker-backed project; its drivers and containers are removed afterwards."""
    root = docker_project(tmp_path, "dockerproj")
    with reaped_at_exit(root), containers_removed_at_exit(engine, root):
        yield root


@pytest.fixture
async def dsession(docker_root: Path) -> AsyncIterator[Client]:
    """One MCP session on the docker-backed project."""
    async with Client(server_for(docker_root), mode="legacy") as client:
        yield client
