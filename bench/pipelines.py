"""Shared pieces of the run benchmarks: a project with a workspace, pipeline files, submit and wait.

The demo-like pipeline is three tiny numpy stages (``prepare`` → ``train`` → ``evaluate``);
``bench.vs_dvc`` runs the same computations as plain scripts in a DVC project.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from goldfish.context import ServerContext
    from goldfish.runs.models import RunSubmission
    from goldfish.runs.requests import RunRequest

REASON = "benchmarking how fast goldfish runs a pipeline"
RESULTS_SPEC = {"primary_metric": "score", "direction": "maximize"}
WAIT_LIMIT_SECONDS = 120.0

# -- the demo-like 3-stage pipeline --------------------------------------------------------------
DEMO_PIPELINE = """name: demo
stages:
  - name: prepare
    outputs:
      features: {type: npy}
  - name: train
    inputs:
      features: {type: npy, from_stage: prepare}
    outputs:
      model: {type: npy}
  - name: evaluate
    inputs:
      features: {type: npy, from_stage: prepare}
      model: {type: npy, from_stage: train}
    outputs:
      scores: {type: csv}
"""
DEMO_CONFIGS = {"prepare": "rows: 2000\ncols: 16\n", "train": "ridge: 0.1\n", "evaluate": "{}\n"}

# The same numpy work on both sides; only the reading and writing of signals differs.
PREPARE_WORK = "x = np.random.default_rng(0).normal(size=(2000, 16)).astype('float32')\n"
TRAIN_WORK = "w = np.linalg.solve(x.T @ x + 0.1 * np.eye(x.shape[1]), x.T @ x[:, 0])\n"
EVALUATE_WORK = "score = float(((x @ w - x[:, 0]) ** 2).mean())\n"

DEMO_MODULES = {
    "prepare": "import numpy as np\nfrom goldfish.io import save_output\n\n"
    + PREPARE_WORK
    + "save_output('features', x)\n",
    "train": "import numpy as np\nfrom goldfish.io import load_input, save_output\n\n"
    "x = np.asarray(load_input('features'))\n" + TRAIN_WORK + "save_output('model', w)\n",
    "evaluate": "import numpy as np\nfrom goldfish.io import load_input, log_metric, save_output\n\n"
    "x = np.asarray(load_input('features'))\nw = np.asarray(load_input('model'))\n"
    + EVALUATE_WORK
    + "log_metric('score', score)\nsave_output('scores', [{'score': score}])\n",
}


def open_project(root: Path, name: str) -> ServerContext:
    """Initialize a project at ``root`` and open its context (started up)."""
    from goldfish.context import ServerContext
    from goldfish.project import initialize_project

    initialize_project(str(root), name)
    # Benchmarks re-run the same workspace back to back: no finalization between runs. Stages
    # run on the process backend (auto would pick docker wherever an engine answers).
    with (root / "goldfish.yaml").open("a", encoding="utf-8") as config:
        config.write("memory:\n  finalization_gate: false\ndefaults:\n  backend: process\n")
    context = ServerContext.open(root)
    context.startup()
    return context


def new_workspace(context: ServerContext, name: str, slot: str) -> Path:
    """Create workspace ``name``, mount it in ``slot`` and return the slot folder."""
    context.workspaces.create(name, f"benchmark workspace {name}")
    return Path(context.workspaces.mount(name, slot).slot_path)


def write_pipeline(slot: Path, pipeline: str, modules: dict[str, str], configs: dict[str, str]) -> None:
    """Write ``pipeline.yaml``, ``modules/<stage>.py`` and ``configs/<stage>.yaml`` into a slot."""
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "configs").mkdir(exist_ok=True)
    (slot / "pipeline.yaml").write_text(pipeline, encoding="utf-8")
    for stage, source in modules.items():
        (slot / "modules" / f"{stage}.py").write_text(source, encoding="utf-8")
    for stage, text in configs.items():
        (slot / "configs" / f"{stage}.yaml").write_text(text, encoding="utf-8")


def run_request(context: ServerContext, workspace: str, *, use_cache: bool) -> RunRequest:
    """A validated ``run(workspace, dry_run=false)`` request, as the tool builds it."""
    return context.run_service.build_request(
        workspace, None, None, None, None, REASON, RESULTS_SPEC, None, False, use_cache, None
    )


def wait_finished(context: ServerContext, submission: RunSubmission) -> RunSubmission:
    """Wait as ``run(wait=true)`` does (``RunWatcher.follow``) until the pipeline run has finished."""
    if submission.pipeline_run_id is None:
        raise RuntimeError("a dry run has nothing to wait for")
    *_, current = context.run_watch.follow(submission, WAIT_LIMIT_SECONDS, 1.0)
    if not current.finished:
        raise RuntimeError(
            f"pipeline run {submission.pipeline_run_id} did not finish in {WAIT_LIMIT_SECONDS:.0f} s"
        )
    return current


def wait_closed(context: ServerContext, run_id: str) -> None:
    """Wait (untimed) until the pipeline run itself is closed, so its driver is gone before the next round."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        run = context.runs.pipeline_run(run_id)
        if run is not None and run.state != "running" and not _alive(run.driver_pid):
            return
        time.sleep(0.01)
    raise RuntimeError(f"pipeline run {run_id} was not closed in {WAIT_LIMIT_SECONDS:.0f} s")


def _alive(pid: int | None) -> bool:
    """True while process ``pid`` runs (a zombie counts as gone)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def require_completed(submission: RunSubmission) -> None:
    """Raise unless every stage of ``submission`` completed (a failed run would time the wrong thing)."""
    from goldfish.runs.models import StageRunInfo

    bad = [
        f"{s.stage}: {s.status} ({s.error})"
        for s in submission.stages
        if isinstance(s, StageRunInfo) and s.status != "completed"
    ]
    if bad or not submission.stages:
        raise RuntimeError(f"run {submission.pipeline_run_id} did not complete: {bad}")


def cache_hits(submission: RunSubmission) -> int:
    """How many stages of ``submission`` reused an earlier result."""
    from goldfish.runs.models import StageRunInfo

    return sum(1 for s in submission.stages if isinstance(s, StageRunInfo) and s.cache_hit)
