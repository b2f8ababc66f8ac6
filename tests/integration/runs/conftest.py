"""Sessions for the pipeline-run tests, and the reaper of what a failing test leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.integration.pipeline_fixtures import (
    reaped_at_exit,
)


@pytest.fixture(autouse=True)
def no_stray_processes(project_root: Path) -> Iterator[None]:
    """Kill whatever driver or stage a failing test leaves behind (by recorded pid only)."""
    with reaped_at_exit(project_root):
        yield


@pytest.fixture
async def session(project_root: Path) -> AsyncIterator[Client]:
    """One in-memory session (handshake era) for the tests that need not run in both eras."""
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client
