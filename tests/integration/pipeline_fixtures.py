"""Small pipelines written into a mounted slot, and bounded waits on the runs they start.

Every stage module is the same few lines of ``goldfish.io`` code (``modules/stagekit.py``),
steered by its ``configs/<stage>.yaml``:

- ``value``: mixed into every output, so changing it changes the output's content hash;
- ``sleep``: seconds to spend (in small steps, printing a line and a metric each step);
- ``obey_stop``: while sleeping, exit as soon as ``should_stop()`` says so (printing that);
- ``exit_code``: exit with this code (after a line on stderr) instead of writing outputs;
- ``skip_outputs``: declared outputs the stage does not write;
- ``needs_file``: exit 4 unless this file exists (a failure fixed outside the code);
- ``metrics``: how many ``loss`` points to log;
- ``spawn_child``: start a long-lived child process (printing ``<stage> child <pid>``);
- ``lines``: how many numbered lines to print on stdout (and ``err_lines`` on stderr).

Outputs depend on the stage's inputs, so a changed upstream output changes everything
downstream of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import yaml
from mcp import Client

from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON, call

T = TypeVar("T")

RESULTS_SPEC: dict[str, Any] = {"primary_metric": "loss", "direction": "minimize"}
STAGE_ID_PATTERN = r"^stage-[0-9a-f]{12}$"
RUN_TIMEOUT = 40.0
POLL_SECONDS = 0.05

THREE_STAGES = """\
name: three
stages:
  - name: prep
    outputs:
      features: {type: npy}
  - name: train
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      model: {type: directory}
  - name: evaluate
    inputs:
      model: {type: directory, from_stage: train}
    outputs:
      report: {type: file}
"""

TWO_STAGES = """\
name: two
stages:
  - name: prep
    outputs:
      features: {type: npy}
  - name: train
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      model: {type: directory}
"""

STAGEKIT = '''\
"""Shared body of every test stage: behaviour comes from the stage config."""

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from goldfish.io import get_config, heartbeat, load_input, log_metric, save_output, should_stop

STAGE = os.environ["GOLDFISH_STAGE"]


def _digest(value) -> str:
    if isinstance(value, Path):
        files = [value] if value.is_file() else sorted(p for p in value.rglob("*") if p.is_file())
        return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]
    return hashlib.sha256(bytes(memoryview(value))).hexdigest()[:16]


def main(inputs, outputs) -> None:
    cfg = get_config()
    print(f"{STAGE} started", flush=True)
    needs = cfg.get("needs_file")
    if needs and not Path(needs).exists():
        print(f"{STAGE}: {needs} is missing", file=sys.stderr, flush=True)
        sys.exit(4)
    for i in range(int(cfg.get("lines", 0))):
        print(f"{STAGE} line {i}", flush=True)
    for i in range(int(cfg.get("err_lines", 0))):
        print(f"{STAGE} warning {i}", file=sys.stderr, flush=True)
    if cfg.get("spawn_child"):
        import subprocess

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(f"{STAGE} child {child.pid}", flush=True)
    for step in range(int(cfg.get("metrics", 0))):
        log_metric("loss", 1.0 / (step + 1), step=step)
    steps = int(float(cfg.get("sleep", 0)) / 0.1)
    for i in range(steps):
        if cfg.get("obey_stop") and should_stop():
            print(f"{STAGE} was asked to stop", flush=True)
            sys.exit(0)
        print(f"{STAGE} tick {i}", flush=True)
        heartbeat(f"tick {i}")
        time.sleep(0.1)
    code = int(cfg.get("exit_code", 0))
    if code:
        print(f"{STAGE} fails on purpose with {code}", file=sys.stderr, flush=True)
        sys.exit(code)
    seen = ",".join(f"{name}={_digest(load_input(name))}" for name in inputs)
    content = f"{STAGE}:{cfg.get('value', 0)}:{seen}"
    skip = set(cfg.get("skip_outputs", []))
    for name, kind in outputs.items():
        if name in skip:
            continue
        if kind == "npy":
            import numpy as np

            base = np.frombuffer(hashlib.sha256(content.encode()).digest(), dtype=np.uint8)
            save_output(name, base.astype("float32").reshape(4, 8))
        elif kind == "directory":
            folder = Path(tempfile.mkdtemp())
            (folder / "weights.txt").write_text(content)
            save_output(name, folder)
        elif kind == "file":
            path = Path(tempfile.mkdtemp()) / f"{name}.txt"
            path.write_text(content)
            save_output(name, path)
        else:
            save_output(name, [{"stage": STAGE, "content": content}])
    print(f"{STAGE} done", flush=True)
'''


def stage_module(inputs: list[str], outputs: dict[str, str]) -> str:
    """The source of ``modules/<stage>.py`` for a stage with these inputs and outputs."""
    return f"from modules.stagekit import main\n\nmain({inputs!r}, {outputs!r})\n"


def write_pipeline(
    slot: Path,
    pipeline_yaml: str = THREE_STAGES,
    configs: dict[str, dict[str, Any]] | None = None,
    *,
    pipeline_name: str | None = None,
) -> None:
    """Write a pipeline, one module per stage and the stage configs into ``slot``."""
    parsed = load_yaml(pipeline_yaml, "pipeline.yaml").data
    target = slot / ("pipeline.yaml" if pipeline_name is None else f"pipelines/{pipeline_name}.yaml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(pipeline_yaml, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "stagekit.py").write_text(STAGEKIT, encoding="utf-8")
    for stage in parsed["stages"]:
        inputs = list((stage.get("inputs") or {}).keys())
        outputs = {name: spec["type"] for name, spec in (stage.get("outputs") or {}).items()}
        module = stage.get("module") or stage["name"]
        (slot / "modules" / f"{module}.py").write_text(stage_module(inputs, outputs), encoding="utf-8")
    write_configs(slot, configs or {})


def write_configs(slot: Path, configs: dict[str, dict[str, Any]]) -> None:
    """Write ``configs/<stage>.yaml`` for each stage given."""
    (slot / "configs").mkdir(exist_ok=True)
    for stage, config in configs.items():
        (slot / "configs" / f"{stage}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed."""
    result = await call(client, tool, **arguments)
    assert result["success"] is True, result
    return result


async def fail(client: Client, tool: str, code: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must fail with ``code``; return the error (code, message, details, remedy)."""
    result = await call(client, tool, **arguments)
    assert result["success"] is False, result
    error: dict[str, Any] = result["error"]
    assert error["code"] == code, error
    assert error["remedy"], error
    return error


async def workspace_in_slot(client: Client, name: str, slot: str = "w1") -> Path:
    """Create workspace ``name`` and mount it; return the slot folder."""
    await ok(client, "create_workspace", name=name, goal="learn something", reason=LONG_REASON)
    mounted = await ok(client, "mount", workspace=name, slot=slot, reason=LONG_REASON)
    return Path(mounted["mount"]["slot_path"])


async def start_run(client: Client, workspace: str = "w1", **arguments: Any) -> dict[str, Any]:
    """Call ``run`` (reason and results spec filled in) and return its ``run`` submission."""
    arguments.setdefault("reason", LONG_REASON)
    arguments.setdefault("results_spec", RESULTS_SPEC)
    result = await ok(client, "run", workspace=workspace, **arguments)
    submission: dict[str, Any] = result["run"]
    return submission


async def pipeline_info(client: Client, pipeline_run_id: str) -> dict[str, Any]:
    """``inspect_run`` of a pipeline run."""
    result = await ok(client, "inspect_run", run_id=pipeline_run_id)
    info: dict[str, Any] = result["inspect"]["pipeline_run"]
    return info


async def wait_for_pipeline(
    client: Client, pipeline_run_id: str, timeout: float = RUN_TIMEOUT
) -> dict[str, Any]:
    """Poll until the pipeline run is terminal; return its final picture."""
    with anyio.fail_after(timeout):
        while True:
            info = await pipeline_info(client, pipeline_run_id)
            if info["state"] != "running":
                return info
            await anyio.sleep(POLL_SECONDS)


async def wait_for_stage(
    client: Client,
    stage_run_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    """Poll ``inspect_run`` of a stage run until ``done(run)``; return that run."""
    with anyio.fail_after(timeout):
        while True:
            result = await ok(client, "inspect_run", run_id=stage_run_id, include=["metadata"])
            run: dict[str, Any] = result["inspect"]["run"]
            if done(run):
                return run
            await anyio.sleep(POLL_SECONDS)


def by_stage(stages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stage runs keyed by stage name."""
    return {stage["stage"]: stage for stage in stages}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Block (with short polls) until ``condition()``; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_SECONDS)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = RUN_TIMEOUT) -> T:
    """Await ``check()`` (with short polls) until it returns something truthy; return that."""
    with anyio.fail_after(timeout):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(POLL_SECONDS)


# -- processes -------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process is in process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def database(root: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to the project's database (autocommit)."""
    conn = sqlite3.connect(root / ".goldfish" / "goldfish.db", timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[19]


def run_pids(root: Path) -> list[int]:
    """Group leaders of this project's drivers and stage processes that are still alive.

    A pid counts only when it is still the process Goldfish recorded (a driver's command line
    names its pipeline run; a stage's kernel start time matches its handle).
    """
    if not (root / ".goldfish" / "goldfish.db").exists():
        return []
    pids: list[int] = []
    with contextlib.closing(database(root)) as conn:
        for row in conn.execute("SELECT id, driver_pid FROM pipeline_runs WHERE driver_pid > 0"):
            if str(row["id"]) in _cmdline(int(row["driver_pid"])):
                pids.append(int(row["driver_pid"]))
        for row in conn.execute("SELECT backend_handle FROM stage_runs WHERE backend_handle IS NOT NULL"):
            handle = json.loads(row["backend_handle"])
            if "pid" not in handle:  # a container: the docker tests remove theirs by label
                continue
            pid = int(handle["pid"])
            if handle.get("start_time") is not None and _start_time(pid) == handle["start_time"]:
                pids.append(pid)
    return [pid for pid in pids if pid != os.getpid()]


@contextlib.contextmanager
def reaped_at_exit(root: Path) -> Iterator[None]:
    """Whatever happens, kill the process groups of this project's drivers and stages afterwards."""
    try:
        yield
    finally:
        for pid in run_pids(root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def reaping_stray_processes(project_root: Path) -> Iterator[None]:
    """Kill whatever driver or stage a failing test leaves behind (``pytest.mark.usefixtures``)."""
    with reaped_at_exit(project_root):
        yield


@pytest.fixture
async def legacy_session(project_root: Path) -> AsyncIterator[Client]:
    """One in-memory session (handshake era) on the test project."""
    async with Client(server_for(project_root), mode="legacy") as client:
        yield client
