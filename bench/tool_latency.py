"""tool_latency: read-tool latency through an MCP client session, and how it scales with project size.

Part 1 (workspaces): a project of 50 workspaces x 20 versions is built through the services
(create, mount, write, save, hibernate), then three workspaces are mounted in the three slots
and one file of slot ``w1`` is changed without saving. An in-memory
``mcp.Client(server_for(root), mode="legacy")`` session (JSON-RPC framing over memory streams, as
over stdio but without the pipes) calls ``status``, ``diff`` (w1 against its last version),
``inspect_workspace`` (the workspace in w1) and ``list_workspaces``, 100 timed calls each after
one untimed warm-up call. The same ``status`` and ``list_workspaces`` figures on a 5 x 2 project
give the scaling ratio.

Part 2 (runs, the spec's row): the same 50 x 20 project is given run history
(``bench.run_history``): first 100 stage runs, then grown to 10,000 stage runs with 1,000,000
metric points (10 and 100 runs, 1,000 and 10,000 points with ``--quick``). After each step a
session times ``status``, ``list_history``, ``list_runs`` (all, and of one workspace),
``inspect_run`` and ``logs``; the 10,000-run p50 over the 100-run p50 is the scaling ratio.
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
from bench.run_history import History, add_runs, stage_run_id, write_log

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

# Run history of part 2: (fewer runs, more runs); pipeline runs have two stage runs each.
RUNS = (History(50, 50, 10_000), History(5_000, 50, 10_000))
RUNS_QUICK = (History(5, 5, 1_000), History(50, 5, 1_000))

SCALED = ("status", "list_workspaces")

# A timed call: its figure label → (tool, arguments).
Calls = dict[str, tuple[str, dict[str, Any]]]


def _calls(workspace: str) -> Calls:
    """The timed calls of part 1 (workspaces)."""
    return {
        "status": ("status", {}),
        "diff": ("diff", {"target": SLOTS[0]}),
        "inspect_workspace": ("inspect_workspace", {"name": workspace}),
        "list_workspaces": ("list_workspaces", {}),
    }


def _run_calls(workspace: str, run_id: str) -> Calls:
    """The timed calls of part 2 (runs): the tools of the spec's row."""
    return {
        "status": ("status", {}),
        "list_history": ("list_history", {"workspace": workspace}),
        "list_runs": ("list_runs", {}),
        "list_runs_workspace": ("list_runs", {"workspace": workspace}),
        "inspect_run": ("inspect_run", {"run_id": run_id, "include": ["metadata"]}),
        "logs": ("logs", {"run_id": run_id, "tail": 100}),
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
    last: dict[str, Any] = field(default_factory=dict)


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
    samples.last = result.structured_content or {}
    return samples


async def _time_tools(root: Path, timed: Calls, calls: int) -> dict[str, ToolSamples]:
    """Per label, the timings of one in-memory session on the project at ``root``."""
    from goldfish.server.app import server_for

    async with Client(server_for(root), mode="legacy") as client:
        return {label: await _time_tool(client, tool, args, calls) for label, (tool, args) in timed.items()}


def time_tools(root: Path, timed: Calls, calls: int) -> dict[str, ToolSamples]:
    """Synchronous wrapper of the timed session."""
    return anyio.run(_time_tools, root, timed, calls)


# -- the benchmark ----------------------------------------------------------------------------
def _latency_figures(
    samples: dict[str, ToolSamples], suffix: str = "", *, full: bool | None = None
) -> Iterator[Figure]:
    """p50 of each label; with ``full`` (default: no suffix) also p99 and the client's validation share."""
    for tool, timings in samples.items():
        n = len(timings.calls)
        yield Figure(NAME, f"{tool}_p50{suffix}", median(timings.calls), "ms", n)
        if not suffix if full is None else full:
            yield Figure(NAME, f"{tool}_p99{suffix}", percentile(timings.calls, 99), "ms", n)
            check = median(timings.client_validation)
            yield Figure(
                NAME, f"{tool}_client_validation_p50{suffix}", check, "ms", len(timings.client_validation)
            )


def _ratios(
    big: dict[str, ToolSamples], small: dict[str, ToolSamples], label: str, n: int
) -> Iterator[Figure]:
    for tool, timings in small.items():
        scaling = ratio(median(big[tool].calls), median(timings.calls))
        yield Figure(NAME, f"{tool}_p50_ratio_{label}", scaling, "ratio", n)


def grow_history(root: Path, shape: Shape, history: History, start: int) -> tuple[float, int]:
    """Add pipeline runs ``start ..`` of ``history`` to the project at ``root``: (seconds, metric points)."""
    from goldfish.context import ServerContext

    began = time.perf_counter()
    context = ServerContext.open(root)
    try:
        names = [workspace_name(index) for index in range(shape.workspaces)]
        points = add_runs(context, names, shape.versions, history, start, history.pipeline_runs)
        if start == 0:
            write_log(context, stage_run_id(0, "train"))
    finally:
        context.close()
    return time.perf_counter() - began, points


def _run_part(root: Path, shape: Shape, histories: tuple[History, History], calls: int) -> Iterator[Figure]:
    """Part 2: the run tools on ``root`` with the smaller history, then grown to the larger one."""
    fewer, more = histories
    timed = _run_calls(workspace_name(0), stage_run_id(0, "train"))
    labels = [f"_{h.stage_runs}runs" for h in histories]
    seconds, points = grow_history(root, shape, fewer, 0)
    yield Figure(NAME, f"build{labels[0]}_s", seconds, "s", 1)
    small = time_tools(root, timed, calls)
    yield from _latency_figures(small, labels[0], full=False)
    seconds, added = grow_history(root, shape, more, fewer.pipeline_runs)
    yield Figure(NAME, f"build{labels[1]}_s", seconds, "s", 1)
    big = time_tools(root, timed, calls)
    yield Figure(NAME, "stage_runs", int(big["list_runs"].last["total"]), "count", 1)
    yield Figure(NAME, "metric_points", points + added, "count", 1)
    yield from _latency_figures(big, labels[1], full=True)
    yield from _ratios(big, small, f"{labels[1][1:]}_vs{labels[0]}", calls)


def run(quick: bool) -> Iterator[Figure]:
    """Build a large and a small project and time the read tools on both; then add runs to the large one."""
    large = LARGE_QUICK if quick else LARGE
    calls = 10 if quick else 100
    with temp_dir(NAME) as workdir:
        build_s = build_project(workdir / "large", large)
        yield Figure(NAME, f"build_{large.label}_s", build_s, "s", 1)
        big = time_tools(workdir / "large", _calls(workspace_name(0)), calls)
        yield from _latency_figures(big)
        build_project(workdir / "small", SMALL)
        timed = {label: call for label, call in _calls(workspace_name(0)).items() if label in SCALED}
        small = time_tools(workdir / "small", timed, calls)
        yield from _latency_figures(small, f"_{SMALL.label}")
        yield from _ratios(big, small, f"{large.label}_vs_{SMALL.label}", calls)
        yield from _run_part(workdir / "large", large, RUNS_QUICK if quick else RUNS, calls)
