"""Every tool through the two SDK clients agents are built on, over a real session each.

The TypeScript SDK client (``ts_client/``, pinned by its package-lock.json and installed by
``scripts/ensure-node-client.sh``) drives ``goldfish serve`` over stdio; the Python client drives
the server in memory. Both make the same calls (``agent_calls.py``): per tool one that must fail,
readable as ``isError`` with the error JSON as text and its code, and one that must succeed.
Without node or the installed client the TypeScript test skips, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client

from goldfish.server.app import server_for
from goldfish.server.app_state import GoldfishApp
from goldfish.server.toolkit import ToolRegistry
from goldfish.server.tools import register_all
from tests.conftest import structured
from tests.docker_support import skip_or_fail
from tests.e2e.agent_calls import Prepared, ToolCall, plan, prepare
from tests.e2e.test_stdio_and_http import goldfish_command
from tests.integration.pipeline_fixtures import reaped_at_exit

TS_CLIENT = Path(__file__).with_name("ts_client")
NODE_SETUP_HINT = "run `bash scripts/ensure-node-client.sh` (what `make test` does) with Node 20+ and npm"
CLIENT_TIMEOUT = 600
LIST_GOAL_BYTES = 40_000


def node_client_problem() -> str | None:
    """Why the TypeScript client cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json").is_file():
        return f"the TypeScript MCP SDK is not installed under {TS_CLIENT}"
    return None


@pytest.fixture
def prepared(project_root: Path) -> Iterator[Prepared]:
    """A project where every tool can succeed; its runs' processes are reaped afterwards."""
    with reaped_at_exit(project_root):
        yield prepare(project_root)


def assert_every_tool_called_both_ways(listed: set[str], calls: list[dict[str, Any]]) -> None:
    """Each listed tool was called once to fail and once to succeed (and nothing unlisted succeeded)."""
    made = {(c["tool"], c["expect"]) for c in calls}
    assert {(tool, expect) for tool in listed for expect in ("error", "success")} <= made
    assert {c["tool"] for c in calls if c["expect"] == "success"} == listed


def test_typescript_sdk_client_reads_every_result_and_every_error_code(
    prepared: Prepared, tmp_path: Path
) -> None:
    problem = node_client_problem()
    if problem is not None:
        skip_or_fail(problem, NODE_SETUP_HINT)
    calls = plan(prepared)
    command = goldfish_command()
    plan_file, report_file = tmp_path / "plan.json", tmp_path / "report.json"
    plan_file.write_text(
        json.dumps(
            {
                "command": command[0],
                "args": [*command[1:], "serve", "--project", str(prepared.root)],
                "cwd": str(prepared.root),
                "calls": [call.as_json() for call in calls],
            }
        ),
        encoding="utf-8",
    )

    finished = subprocess.run(
        ["node", str(TS_CLIENT / "client.mjs"), str(plan_file), str(report_file)],
        cwd=TS_CLIENT,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )

    assert report_file.is_file(), finished.stderr[-4000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["failures"] == [], finished.stderr[-4000:]
    assert finished.returncode == 0, finished.stderr[-4000:]
    listed = {tool["name"] for tool in report["tools"]}
    assert_every_tool_called_both_ways(listed, report["calls"])
    expected = {(c.tool, c.code) for c in calls if c.code is not None}
    assert {(c["tool"], c["code"]) for c in report["calls"] if c["expect"] == "error"} == expected
    assert all(tool["title"] for tool in report["tools"])
    assert report["listBytes"] < LIST_GOAL_BYTES


def full_result_schemas() -> dict[str, dict[str, Any]]:
    """Each tool's full result-model JSON schema (what the server checks results against)."""
    registry = ToolRegistry(GoldfishApp(None))
    register_all(registry)
    schemas = {name: tool.fn_metadata.output_schema for name, tool in registry.tools.items()}
    return {name: schema for name, schema in schemas.items() if schema is not None}


async def _python_session(root: Path, calls: list[ToolCall]) -> tuple[set[str], list[dict[str, Any]]]:
    full = full_result_schemas()
    made: list[dict[str, Any]] = []
    async with Client(server_for(root), mode="legacy") as client:
        tools = (await client.list_tools()).tools
        published = {tool.name: tool.output_schema for tool in tools}
        for item in calls:
            payload = structured(await client.call_tool(item.tool, item.arguments))
            made.append({"tool": item.tool, "expect": item.expect})
            if item.code is not None:
                assert payload["error"]["code"] == item.code, (item.tool, payload)
                continue
            assert payload["success"] is True, (item.tool, payload)
            jsonschema.validate(payload, full[item.tool])
            if published[item.tool] is not None:
                jsonschema.validate(payload, published[item.tool])
    return {tool.name for tool in tools}, made


def test_python_client_every_tool_fails_readably_and_succeeds_with_results_matching_their_models(
    prepared: Prepared,
) -> None:
    listed, made = anyio.run(_python_session, prepared.root, plan(prepared))

    assert_every_tool_called_both_ways(listed, made)
