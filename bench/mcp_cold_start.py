"""mcp_cold_start: spawn ``goldfish serve`` over stdio → initialize → tools/list.

Each sample starts the clock before the server process is spawned and stops it when the
``tools/list`` reply is in, through ``mcp.Client(StdioServerParameters(...), mode="legacy")``
(legacy forces the initialize handshake). The floor is the same for a script that only runs
an empty ``MCPServer``; the samples alternate goldfish / floor so drift hits both sides.

A separate, untimed spawn of the same server reports whether ``google.cloud.compute_v1`` was
imported by the time the server exits (it must not be: cloud clients load only when a GCE/GCS
path runs).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from bench.harness import Figure, median, ms_since, ratio, temp_dir

NAME = "mcp_cold_start"
FULL_SAMPLES = 5
CLOUD_MODULE = "google.cloud.compute_v1"

EMPTY_SERVER = 'from mcp.server.mcpserver import MCPServer\nMCPServer("empty").run()\n'

# Runs ``goldfish serve`` exactly as the console script does, and at exit writes which of the
# watched modules were imported (argv: out-file, project root, modules...).
IMPORT_PROBE = """
import atexit, json, sys
out, root, watched = sys.argv[1], sys.argv[2], sys.argv[3:]

def _dump():
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({m: m in sys.modules for m in watched}, fh)

atexit.register(_dump)
from goldfish.cli.app import main
sys.exit(main(["serve", "--project", root]))
"""


def goldfish_params(root: Path) -> StdioServerParameters:
    """How to spawn ``goldfish serve`` on the project at ``root`` (the console script's code path)."""
    return StdioServerParameters(
        command=sys.executable, args=["-m", "goldfish.cli", "serve", "--project", str(root)], cwd=str(root)
    )


def floor_params(script: Path) -> StdioServerParameters:
    """How to spawn the empty MCPServer script."""
    return StdioServerParameters(command=sys.executable, args=[str(script)], cwd=str(script.parent))


async def _spawn_and_list(params: StdioServerParameters) -> tuple[float, int]:
    """Spawn → initialize → tools/list; return (ms until the list arrived, number of tools)."""
    start = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        tools = await client.list_tools()
        elapsed = ms_since(start)
    return elapsed, len(tools.tools)


def cold_start_ms(params: StdioServerParameters) -> tuple[float, int]:
    """One cold start of the server ``params`` describes: (milliseconds, tool count)."""
    return anyio.run(_spawn_and_list, params)


def imported_modules(root: Path, workdir: Path, modules: list[str]) -> dict[str, bool]:
    """Serve the project once (initialize, tools/list, exit) and report which ``modules`` got imported."""
    out = workdir / "imports.json"
    params = StdioServerParameters(
        command=sys.executable, args=["-c", IMPORT_PROBE, str(out), str(root), *modules], cwd=str(root)
    )
    cold_start_ms(params)
    result: dict[str, bool] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _project(workdir: Path) -> Path:
    from goldfish.project import initialize_project

    root = workdir / "project"
    initialize_project(str(root), "coldstart")
    return root


def run(quick: bool) -> Iterator[Figure]:
    """Measure the cold start of goldfish and of the empty-server floor, plus the cloud-import check."""
    samples = 1 if quick else FULL_SAMPLES
    with temp_dir(NAME) as workdir:
        root = _project(workdir)
        script = workdir / "empty_server.py"
        script.write_text(EMPTY_SERVER, encoding="utf-8")
        goldfish, floor, tools = [], [], 0
        for _ in range(samples):
            elapsed, tools = cold_start_ms(goldfish_params(root))
            goldfish.append(elapsed)
            floor.append(cold_start_ms(floor_params(script))[0])
        yield Figure(NAME, "goldfish_ms", median(goldfish), "ms", samples)
        yield Figure(NAME, "empty_server_ms", median(floor), "ms", samples)
        yield Figure(NAME, "ratio_vs_empty", ratio(median(goldfish), median(floor)), "ratio", samples)
        yield Figure(NAME, "tools_listed", tools, "count", 1)
        imported = imported_modules(root, workdir, [CLOUD_MODULE])
        yield Figure(NAME, f"imports_{CLOUD_MODULE}", imported[CLOUD_MODULE], "bool", 1)
        yield Figure(NAME, f"installed_{CLOUD_MODULE}", _has_spec(CLOUD_MODULE), "bool", 1)


def _has_spec(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
