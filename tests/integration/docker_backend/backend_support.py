"""Docker-backed projects, the pipelines and stage modules the docker-backend tests run, bounded waits.

Every test removes its project's containers (by label) at the end (``docker_root`` in conftest.py).

Without a usable engine these tests skip with the reason; under ``CI=true`` they fail
(``make test`` prepares the engine with ``scripts/ensure-docker.sh``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client

from goldfish.project import initialize_project
from tests.conftest import set_finalization_gate, use_backend
from tests.integration.pipeline_fixtures import ok, start_run, wait_for_pipeline

REPO = Path(__file__).resolve().parents[3]
DOCKER_RUN_TIMEOUT = 120.0

ONE_STAGE = """\
name: one
stages:
  - name: prep
    outputs:
      features: {type: npy}
"""

TAMPER_PIPELINE = """\
name: tamper
stages:
  - name: prep
    outputs:
      features: {type: npy}
  - name: tamper
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      report: {type: file}
"""

TAMPER = """\
import os
import sys
from pathlib import Path

from goldfish.io import get_input_path

folder = get_input_path("features")
print(f"uid={os.getuid()} inputs={os.environ['GOLDFISH_INPUTS_DIR']} cwd={os.getcwd()}", flush=True)
try:
    (folder / "data.npy").write_bytes(b"overwritten")
except OSError as exc:
    print(f"write refused: {exc.strerror}", file=sys.stderr, flush=True)
    sys.exit(3)
print("the input was writable", flush=True)
"""

FORK_BOMB = """\
import subprocess
import sys

from goldfish.io import get_output_path

children = []
try:
    for _ in range(200):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as exc:
    print(f"pids limit hit after {len(children)} children: {exc.strerror}", file=sys.stderr, flush=True)
    sys.exit(5)
print(f"started all {len(children)} children", flush=True)
get_output_path("features").write_bytes(b"")  # a stage that saves its output (the pre-run review checks)
"""


def docker_project(base: Path, name: str, extra_yaml: str = "", backend: str = "docker") -> Path:
    """A project whose stages run on ``backend`` (gate off, like ``project_root``)."""
    root = base / name
    initialize_project(str(root), name)
    set_finalization_gate(root, enabled=False)
    use_backend(root, backend)
    if extra_yaml:
        with (root / "goldfish.yaml").open("a", encoding="utf-8") as config:
            config.write(extra_yaml)
    return root


async def run_and_wait(client: Client, **arguments: Any) -> dict[str, Any]:
    """Start a run and wait (bounded) for its pipeline run to end."""
    submission = await start_run(client, **arguments)
    return await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=DOCKER_RUN_TIMEOUT)


async def stderr_of(client: Client, run_id: str) -> str:
    result = await ok(client, "logs", run_id=run_id, stream="stderr", tail=200)
    return "\n".join(result["logs"]["lines"])


async def stdout_of(client: Client, run_id: str) -> str:
    result = await ok(client, "logs", run_id=run_id, stream="stdout", tail=200)
    return "\n".join(result["logs"]["lines"])
