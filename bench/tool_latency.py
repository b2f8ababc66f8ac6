"""tool_latency: read-tool latency through an MCP client session, and how it scales with project size.

A project of 50 workspaces x 20 versions is built through the services (create, mount, write,
save, hibernate), then three workspaces are mounted in the three slots and one file of slot
``w1`` is changed without saving. An in-memory ``mcp.Client(server_for(root), mode="legacy")``
session (JSON-RPC framing over memory streams, as over stdio but without the pipes) calls
``status``, ``diff`` (w1 against its last version), ``inspect_workspace`` (the workspace in w1)
and ``list_workspaces``, 100 timed calls each after one untimed warm-up call. The same
``status`` and ``list_workspaces`` figures on a 5 x 2 project give the scaling ratio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp import Client
from mcp.types import CallToolResult

from bench.harness import Figure, median, ms_since, percentile, ratio, temp_dir

if TYPE_CHECKING:
    from goldfish.context import ServerContext

NAME = "tool_latency"
SLOTS = ("w1", "w2", "w3")
FILES_PER_WORKSPACE = 5
CHANGED_FILE = "train.py"


@dataclass(frozen=True)
class Shape:
    """How big a benchmark project is."""

    workspaces: int
    versions: int

    @property
    def label(self) -> str:
        """``50x20`` style name of the shape."""
        return f"{self.workspaces}x{self.versions}"


LARGE = Shape(50, 20)
LARGE_QUICK = Shape(5, 3)
SMALL = Shape(5, 2)


def _calls(workspace: str) -> dict[str, dict[str, Any]]:
    """Tool name → arguments of each timed call."""
    return {
        "status": {},
        "diff": {"target": SLOTS[0]},
        "inspect_workspace": {"name": workspace},
        "list_workspaces": {},
    }


# -- building the project ---------------------------------------------------------------------
def workspace_name(index: int) -> str:
    """The name of the ``index``-th benchmark workspace."""
    return f"ws{index:03d}"


def _write_files(slot: Path, workspace: str) -> None:
    for i in range(FILES_PER_WORKSPACE - 1):
        (slot / f"module{i}.py").write_text(f"# {workspace} module {i}\nVALUE = {i}\n", encoding="utf-8")
    _write_train(slot, 0)


def _write_train(slot: Path, version: int) -> None:
    text = f"# training script\nLEARNING_RATE = {version + 1}e-4\nEPOCHS = {10 + version}\n"
    (slot / CHANGED_FILE).write_text(text, encoding="utf-8")


def _fill_workspace(context: ServerContext, name: str, versions: int) -> None:
    """Create ``name`` with ``versions`` saved versions, leaving slot w1 empty again."""
    context.workspaces.create(name, f"benchmark workspace {name}")
    slot = Path(context.workspaces.mount(name, SLOTS[0]).slot_path)
    _write_files(slot, name)
    for version in range(versions):
        _write_train(slot, version)
        context.versions.save(SLOTS[0], f"version {version + 1} of {name}")
    context.workspaces.hibernate(SLOTS[0])


def build_project(root: Path, shape: Shape) -> float:
    """Create the project at ``root``: ``shape``, three slots mounted, w1 dirty. Returns seconds taken."""
    from goldfish.context import ServerContext
    from goldfish.project import initialize_project

    start = time.perf_counter()
    initialize_project(str(root), f"latency{shape.workspaces}")
    context = ServerContext.open(root)
    try:
        context.startup()
        for index in range(shape.workspaces):
            _fill_workspace(context, workspace_name(index), shape.versions)
        for index, slot in enumerate(SLOTS):
            context.workspaces.mount(workspace_name(index % shape.workspaces), slot)
        _write_train(context.paths.slot(SLOTS[0]), shape.versions + 100)
    finally:
        context.close()
    return time.perf_counter() - start


# -- timing the tools -------------------------------------------------------------------------
@dataclass
class ToolSamples:
    """Timings of one tool: whole calls as the client sees them, and the client's own share."""

    calls: list[float] = field(default_factory=list)
    client_validation: list[float] = field(default_factory=list)


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[float, CallToolResult]:
    """One tool call: (milliseconds, result); a failed call means a broken setup, so it raises."""
    start = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = ms_since(start)
    payload = result.structured_content or {}
    if result.is_error or payload.get("success") is not True:
        raise RuntimeError(f"{tool}({arguments}) failed: {payload or result.content}")
    return elapsed, result


async def _validation_ms(client: Client, tool: str, result: CallToolResult) -> float:
    """How long the mcp client's output-schema check of ``result`` takes (part of every call above)."""
    start = time.perf_counter()
    await client.session.validate_tool_result(tool, result)
    return ms_since(start)


async def _time_tool(client: Client, tool: str, arguments: dict[str, Any], calls: int) -> ToolSamples:
    """``calls`` timed calls after one warm-up call, then as many timings of the client-side check."""
    samples = ToolSamples()
    _, result = await _call(client, tool, arguments)
    for _ in range(calls):
        elapsed, result = await _call(client, tool, arguments)
        samples.calls.append(elapsed)
    for _ in range(calls):
        samples.client_validation.append(await _validation_ms(client, tool, result))
    return samples


async def _time_tools(root: Path, tools: list[str], calls: int) -> dict[str, ToolSamples]:
    """Per tool, the timings of one in-memory session on the project at ``root``."""
    from goldfish.server.app import server_for

    arguments = _calls(workspace_name(0))
    async with Client(server_for(root), mode="legacy") as client:
        return {tool: await _time_tool(client, tool, arguments[tool], calls) for tool in tools}


def time_tools(root: Path, tools: list[str], calls: int) -> dict[str, ToolSamples]:
    """Synchronous wrapper of the timed session."""
    return anyio.run(_time_tools, root, tools, calls)


# -- the benchmark ----------------------------------------------------------------------------
def _latency_figures(samples: dict[str, ToolSamples], suffix: str = "") -> Iterator[Figure]:
    for tool, timings in samples.items():
        n = len(timings.calls)
        yield Figure(NAME, f"{tool}_p50{suffix}", median(timings.calls), "ms", n)
        if not suffix:
            yield Figure(NAME, f"{tool}_p99", percentile(timings.calls, 99), "ms", n)
            check = median(timings.client_validation)
            yield Figure(NAME, f"{tool}_client_validation_p50", check, "ms", len(timings.client_validation))


def run(quick: bool) -> Iterator[Figure]:
    """Build a large and a small project and time the read tools on both."""
    large = LARGE_QUICK if quick else LARGE
    calls = 10 if quick else 100
    with temp_dir(NAME) as workdir:
        build_s = build_project(workdir / "large", large)
        yield Figure(NAME, f"build_{large.label}_s", build_s, "s", 1)
        big = time_tools(workdir / "large", list(_calls("").keys()), calls)
        yield from _latency_figures(big)
        build_project(workdir / "small", SMALL)
        small = time_tools(workdir / "small", ["status", "list_workspaces"], calls)
        yield from _latency_figures(small, f"_{SMALL.label}")
        for tool, timings in small.items():
            scaling = ratio(median(big[tool].calls), median(timings.calls))
            yield Figure(NAME, f"{tool}_p50_ratio_{large.label}_vs_{SMALL.label}", scaling, "ratio", calls)
