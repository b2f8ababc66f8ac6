"""Sessions for the experiment-memory tests, and the reaper of what a failing test leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.integration.pipeline_fixtures import reaped_at_exit


@pytest.fixture
async def session(project_root: Path) -> AsyncIterator[Client]:
    """One handshake-era session on a project with the finalization gate off."""
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client


@pytest.fixture
async def gated(gated_project_root: Path) -> AsyncIterator[Client]:
    """One handshake-era session on a project with the default config (finalization gate on)."""
    with reaped_at_exit(gated_project_root):
        async with Client(server_for(gated_project_root), mode="legacy") as client:
            yield client


@pytest.fixture(autouse=True)
def no_stray_processes(project_root: Path) -> Iterator[None]:
    """Kill whatever driver or stage a failing test leaves behind (by recorded pid only)."""
    with reaped_at_exit(project_root):
        yield
