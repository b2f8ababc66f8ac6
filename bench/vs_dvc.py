"""vs_dvc: the demo-like 3 stages in Goldfish beside the same stages as plain scripts in a DVC project.

DVC side: ``git init`` + ``dvc init`` in a temp folder, ``prepare.py`` / ``train.py`` /
``evaluate.py`` doing the same numpy work as the Goldfish modules, and a ``dvc.yaml`` whose
stages declare the scripts and upstream files as deps and the ``.npy`` / ``.csv`` files as outs.
Each ``dvc`` call is a fresh ``python -m dvc`` process (that is how DVC is used; its start-up is
part of its cost). Goldfish side: ``context.run_service.submit`` + polling like
``run(wait=true)`` in an already open server context (the MCP server is long-lived; there is no
``goldfish run`` CLI to spawn).

Per round, alternating: change ``prepare`` on both sides (a new comment line), then Goldfish
run+wait (all three stages miss the cache and run) vs ``dvc repro -f``; then an unchanged
Goldfish re-run (three cache hits) vs ``dvc repro`` (nothing to do). Both runs of each pair are
checked for doing the work they should. When DVC is not installed the benchmark prints one
``skipped`` line; DVC is not a project dependency (``pip install "dvc==3.67.*"`` to enable it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import GIT_IDENTITY, Figure, git, median, ratio, temp_dir
from bench.pipelines import (
    DEMO_CONFIGS,
    DEMO_MODULES,
    DEMO_PIPELINE,
    EVALUATE_WORK,
    PREPARE_WORK,
    TRAIN_WORK,
    cache_hits,
    new_workspace,
    open_project,
    require_completed,
    run_request,
    wait_closed,
    wait_finished,
    write_pipeline,
)

if TYPE_CHECKING:
    from goldfish.context import ServerContext

NAME = "vs_dvc"
FULL_ROUNDS, QUICK_ROUNDS = 5, 1
DVC_ENV = {**os.environ, **GIT_IDENTITY, "DVC_NO_ANALYTICS": "1"}

DVC_SCRIPTS = {
    "prepare": "import numpy as np\n\n" + PREPARE_WORK + "np.save('features.npy', x)\n",
    "train": "import numpy as np\n\nx = np.load('features.npy')\n" + TRAIN_WORK + "np.save('model.npy', w)\n",
    "evaluate": "import numpy as np\n\nx = np.load('features.npy')\nw = np.load('model.npy')\n"
    + EVALUATE_WORK
    + "open('scores.csv', 'w').write(f'score\\n{score}\\n')\n",
}


def _dvc_yaml() -> str:
    python = shlex.quote(sys.executable)
    stages = {
        "prepare": ([], "features.npy"),
        "train": (["features.npy"], "model.npy"),
        "evaluate": (["features.npy", "model.npy"], "scores.csv"),
    }
    text = "stages:\n"
    for stage, (inputs, out) in stages.items():
        deps = "".join(f"      - {dep}\n" for dep in [f"{stage}.py", *inputs])
        text += f"  {stage}:\n    cmd: {python} {stage}.py\n    deps:\n{deps}    outs:\n      - {out}\n"
    return text


def _dvc(project: Path, *args: str) -> str:
    """Run ``python -m dvc args`` in ``project``; return its output (raise on failure)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=DVC_ENV,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def _dvc_project(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q")
    _dvc(root, "init", "-q")
    for stage, source in DVC_SCRIPTS.items():
        (root / f"{stage}.py").write_text(source, encoding="utf-8")
    (root / "dvc.yaml").write_text(_dvc_yaml(), encoding="utf-8")
    _dvc(root, "repro")
    return root


def _timed_dvc(project: Path, stages_expected: int, *args: str) -> float:
    start = time.perf_counter()
    out = _dvc(project, "repro", *args)
    elapsed = (time.perf_counter() - start) * 1000
    ran = out.count("Running stage")
    if ran != stages_expected:
        raise RuntimeError(f"dvc repro {' '.join(args)} ran {ran} stages, expected {stages_expected}:\n{out}")
    return elapsed


def _timed_goldfish(context: ServerContext, hits_expected: int) -> float:
    start = time.perf_counter()
    done = wait_finished(context, context.run_service.submit(run_request(context, "demo", use_cache=True)))
    elapsed = (time.perf_counter() - start) * 1000
    require_completed(done)
    if cache_hits(done) != hits_expected:
        raise RuntimeError(f"goldfish run had {cache_hits(done)} cache hits, expected {hits_expected}")
    if done.pipeline_run_id is not None:
        wait_closed(context, done.pipeline_run_id)
    return elapsed


def run(quick: bool) -> Iterator[Figure]:
    """Goldfish vs DVC after a code change and on an unchanged re-run."""
    if importlib.util.find_spec("dvc") is None:
        yield Figure(NAME, "skipped", "dvc not installed", "text", 0)
        return
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    changed: dict[str, list[float]] = {"goldfish": [], "dvc": []}
    unchanged: dict[str, list[float]] = {"goldfish": [], "dvc": []}
    with temp_dir(NAME) as workdir:
        dvc_root = _dvc_project(workdir / "dvc")
        context = open_project(workdir / "project", "vsdvc")
        try:
            slot = new_workspace(context, "demo", "w1")
            write_pipeline(slot, DEMO_PIPELINE, DEMO_MODULES, DEMO_CONFIGS)
            _timed_goldfish(context, 0)
            for round_no in range(rounds):
                comment = f"# code change {round_no}\n"
                (slot / "modules" / "prepare.py").write_text(
                    DEMO_MODULES["prepare"] + comment, encoding="utf-8"
                )
                (dvc_root / "prepare.py").write_text(DVC_SCRIPTS["prepare"] + comment, encoding="utf-8")
                changed["goldfish"].append(_timed_goldfish(context, 0))
                changed["dvc"].append(_timed_dvc(dvc_root, 3, "-f"))
                unchanged["goldfish"].append(_timed_goldfish(context, 3))
                unchanged["dvc"].append(_timed_dvc(dvc_root, 0))
        finally:
            context.close()
    yield Figure(NAME, "dvc_version", importlib.metadata.version("dvc"), "text", 1)
    for label, samples in (("code_change", changed), ("unchanged", unchanged)):
        goldfish_ms, dvc_ms = median(samples["goldfish"]), median(samples["dvc"])
        dvc_label = "dvc_repro_f_ms" if label == "code_change" else "dvc_repro_ms"
        yield Figure(NAME, f"goldfish_{label}_ms", goldfish_ms, "ms", rounds)
        yield Figure(NAME, dvc_label, dvc_ms, "ms", rounds)
        yield Figure(NAME, f"ratio_{label}_vs_dvc", ratio(goldfish_ms, dvc_ms), "ratio", rounds)
