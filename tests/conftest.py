"""Shared fixtures: a real project on disk, its services, and MCP client sessions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from goldfish.context import ServerContext
from goldfish.project import initialize_project
from goldfish.server.app import server_for

pytest_plugins = [
    "tests.fakes.gcs_emulator",
    "tests.fakes.gce_simulator",
    "tests.integration.pipeline_fixtures",  # legacy_session, reaping_stray_processes
]

LONG_REASON = "exercising this behaviour in an automated test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """A freshly initialized project (real files, real SQLite, real git).

    The finalization gate is off here so tests can run a workspace repeatedly; the gate's own
    tests use ``gated_project_root``. Stages run on the process backend (``auto`` would pick
    docker wherever an engine answers); the docker tests configure their own projects.
    """
    root = tmp_path / "project"
    initialize_project(str(root), "testproj")
    set_finalization_gate(root, enabled=False)
    use_backend(root, "process")
    return root


@pytest.fixture
def gated_project_root(tmp_path: Path) -> Path:
    """A freshly initialized project with the default config (finalization gate on), process backend."""
    root = tmp_path / "gated"
    initialize_project(str(root), "gated")
    use_backend(root, "process")
    return root


def use_backend(root: Path, backend: str) -> None:
    """Set defaults.backend in a project's goldfish.yaml."""
    config = root / "goldfish.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f"defaults:\n  backend: {backend}\n", encoding="utf-8")


def set_finalization_gate(root: Path, *, enabled: bool) -> None:
    """Switch memory.finalization_gate in a project's goldfish.yaml."""
    config = root / "goldfish.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f"memory:\n  finalization_gate: {str(enabled).lower()}\n", encoding="utf-8")


@pytest.fixture
def context(project_root: Path) -> Iterator[ServerContext]:
    """Services of the project, without MCP."""
    ctx = ServerContext.open(project_root)
    ctx.startup()
    yield ctx
    ctx.close()


@pytest.fixture(params=["legacy", "auto"])
async def client(request: pytest.FixtureRequest, project_root: Path) -> AsyncIterator[Client]:
    """An in-memory MCP client session, in both protocol eras (handshake and stateless)."""
    async with Client(server_for(project_root), mode=request.param) as session:
        yield session


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool and return its structured result (success or error)."""
    result = await client.call_tool(tool, arguments)
    return structured(result)


def structured(result: CallToolResult) -> dict[str, Any]:
    """The payload of a result: its structured content, or for an error the JSON of its text block.

    An error result carries no structured content (a TypeScript client would check it against the
    tool's output schema and turn it into a protocol error); a success's text block repeats it.
    """
    text_blocks = [block for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        assert result.structured_content is None, result
        assert len(result.content) == 1 and text_blocks, result
        payload: dict[str, Any] = json.loads(text_blocks[0].text)
    else:
        assert result.structured_content is not None, result
        if text_blocks:
            assert json.loads(text_blocks[0].text) == result.structured_content
        payload = result.structured_content
    assert payload["success"] is (not result.is_error)
    return payload
