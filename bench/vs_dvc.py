"""vs_dvc: the demo-like 3 stages in Goldfish beside the same stages as plain scripts in a DVC project.

Both sides are whole processes, as a user runs them: ``goldfish run demo --wait`` against
``dvc repro -f`` after a code change, and an unchanged ``goldfish run demo --wait`` against
``dvc repro``. The order of the two sides alternates from round to round; each figure is the
median of 5 rounds (1 with ``--quick``). The Goldfish run inside an open server context (what
the ``run`` tool of a long-lived MCP server costs) is kept as a second figure.

DVC is not a project dependency and this benchmark installs nothing: it uses the ``dvc``
command on ``PATH`` (or the one ``GOLDFISH_BENCH_DVC`` names) and prints one ``skipped`` line
when there is none. The DVC stages run with this interpreter, like the Goldfish stages.

A code change rewrites all three modules on both sides (a new comment line), so both run all
three stages: with caching by imports, Goldfish would otherwise rightly reuse the stages whose
code and inputs did not change, and the two sides would do different work.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import GIT_IDENTITY, Figure, git, median, ratio, temp_dir
from bench.pipelines import (
    DEMO_CONFIGS,
    DEMO_MODULES,
    DEMO_PIPELINE,
    EVALUATE_WORK,
    PREPARE_WORK,
    RESULTS_SPEC,
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
STAGES = ("prepare", "train", "evaluate")

DVC_SCRIPTS = {
    "prepare": "import numpy as np\n\n" + PREPARE_WORK + "np.save('features.npy', x)\n",
    "train": "import numpy as np\n\nx = np.load('features.npy')\n" + TRAIN_WORK + "np.save('model.npy', w)\n",
    "evaluate": "import numpy as np\n\nx = np.load('features.npy')\nw = np.load('model.npy')\n"
    + EVALUATE_WORK
    + "open('scores.csv', 'w').write(f'score\\n{score}\\n')\n",
}


def dvc_command() -> str | None:
    """The ``dvc`` executable to measure: ``$GOLDFISH_BENCH_DVC``, else ``dvc`` on PATH."""
    named = os.environ.get("GOLDFISH_BENCH_DVC")
    return named if named and Path(named).is_file() else shutil.which("dvc")


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


def _process(argv: list[str], cwd: Path) -> tuple[float, str, str]:
    """Run ``argv`` in ``cwd``; (milliseconds from spawn to exit, stdout, stderr). Raise on failure."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=DVC_ENV, check=False, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout, done.stderr


class Sides:
    """The two projects and how each side is run and checked."""

    def __init__(self, dvc: str, workdir: Path):
        self.dvc = dvc
        self.dvc_root = workdir / "dvc"
        self.root = workdir / "project"
        self.context: ServerContext | None = None
        self.slot = Path()
        self.edits = 0

    def set_up(self) -> None:
        """Both projects, each run once untimed."""
        self.dvc_root.mkdir()
        git(self.dvc_root, "init", "-q")
        _process([self.dvc, "init", "-q"], self.dvc_root)
        for stage, source in DVC_SCRIPTS.items():
            (self.dvc_root / f"{stage}.py").write_text(source, encoding="utf-8")
        (self.dvc_root / "dvc.yaml").write_text(_dvc_yaml(), encoding="utf-8")
        _process([self.dvc, "repro"], self.dvc_root)
        self.context = open_project(self.root, "vsdvc")
        self.slot = new_workspace(self.context, "demo", "w1")
        write_pipeline(self.slot, DEMO_PIPELINE, DEMO_MODULES, DEMO_CONFIGS)
        (self.slot / "results_spec.json").write_text(json.dumps(RESULTS_SPEC), encoding="utf-8")
        self.goldfish_cli(0)

    def change_code(self) -> None:
        """A new comment line in every stage's module, on both sides."""
        self.edits += 1
        comment = f"# code change {self.edits}\n"
        for stage in STAGES:
            (self.slot / "modules" / f"{stage}.py").write_text(
                DEMO_MODULES[stage] + comment, encoding="utf-8"
            )
            (self.dvc_root / f"{stage}.py").write_text(DVC_SCRIPTS[stage] + comment, encoding="utf-8")

    def goldfish_cli(self, hits_expected: int) -> float:
        """``goldfish run demo --wait`` as a process; its milliseconds."""
        argv = [
            sys.executable,
            "-m",
            "goldfish",
            "run",
            "demo",
            "--wait",
            "--json",
            "--project",
            str(self.root),
        ]
        elapsed, out, _ = _process(argv, self.root)
        submission: dict[str, Any] = json.loads(out)
        states = [stage["status"] for stage in submission["stages"]]
        hits = sum(1 for stage in submission["stages"] if stage["cache_hit"])
        if states != ["completed"] * 3 or hits != hits_expected:
            raise RuntimeError(f"goldfish run: states {states}, {hits} cache hits (expected {hits_expected})")
        self._settle_down(submission["pipeline_run_id"])
        return elapsed

    def goldfish_in_server(self, hits_expected: int) -> float:
        """``run`` + waiting through the open server context; its milliseconds."""
        assert self.context is not None
        start = time.perf_counter()
        done = wait_finished(
            self.context, self.context.run_service.submit(run_request(self.context, "demo", use_cache=True))
        )
        elapsed = (time.perf_counter() - start) * 1000
        require_completed(done)
        if cache_hits(done) != hits_expected:
            raise RuntimeError(f"goldfish run had {cache_hits(done)} cache hits, expected {hits_expected}")
        if done.pipeline_run_id is not None:
            self._settle_down(done.pipeline_run_id)
        return elapsed

    def _settle_down(self, run_id: str) -> None:
        assert self.context is not None
        wait_closed(self.context, run_id)

    def dvc_repro(self, stages_expected: int, *args: str) -> float:
        """``dvc repro [args]`` as a process; its milliseconds."""
        elapsed, out, err = _process([self.dvc, "repro", *args], self.dvc_root)
        ran = (out + err).count("Running stage")
        if ran != stages_expected:
            raise RuntimeError(
                f"dvc repro {' '.join(args)} ran {ran} stages, expected {stages_expected}:\n{out}"
            )
        return elapsed

    def dvc_version(self) -> str:
        return _process([self.dvc, "--version"], self.dvc_root)[1].strip()

    def close(self) -> None:
        if self.context is not None:
            self.context.close()


def run(quick: bool) -> Iterator[Figure]:
    """Goldfish vs DVC after a code change and on an unchanged re-run, both as whole processes."""
    dvc = dvc_command()
    if dvc is None:
        message = (
            "dvc not found on PATH (nor $GOLDFISH_BENCH_DVC); this benchmark installs nothing: "
            "put DVC 3.67 on PATH, e.g. from its own virtualenv"
        )
        yield Figure(NAME, "skipped", message, "text", 0)
        return
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    samples: dict[str, list[float]] = {
        key: []
        for key in ("cli_change", "dvc_change", "server_change", "cli_same", "dvc_same", "server_same")
    }
    load_before = os.getloadavg()[0]
    with temp_dir(NAME) as workdir:
        sides = Sides(dvc, workdir)
        try:
            sides.set_up()
            version = sides.dvc_version()
            for round_no in range(rounds):
                sides.change_code()
                change = [
                    ("cli_change", lambda: sides.goldfish_cli(0)),
                    ("dvc_change", lambda: sides.dvc_repro(3, "-f")),
                ]
                same = [("cli_same", lambda: sides.goldfish_cli(3)), ("dvc_same", lambda: sides.dvc_repro(0))]
                for key, measure in change if round_no % 2 == 0 else change[::-1]:
                    samples[key].append(measure())
                for key, measure in same if round_no % 2 == 0 else same[::-1]:
                    samples[key].append(measure())
                sides.change_code()
                samples["server_change"].append(sides.goldfish_in_server(0))
                samples["server_same"].append(sides.goldfish_in_server(3))
        finally:
            sides.close()
    yield Figure(NAME, "dvc_version", version, "text", 1)
    yield Figure(NAME, "load_average_1m", round(max(load_before, os.getloadavg()[0]), 2), "load", 1)
    for label, suffix in (("code_change", "change"), ("unchanged", "same")):
        cli, dvc_ms, server = (median(samples[f"{side}_{suffix}"]) for side in ("cli", "dvc", "server"))
        dvc_label = "dvc_repro_f_ms" if label == "code_change" else "dvc_repro_ms"
        yield Figure(NAME, f"goldfish_{label}_ms", cli, "ms", rounds)
        yield Figure(NAME, dvc_label, dvc_ms, "ms", rounds)
        yield Figure(NAME, f"ratio_{label}_vs_dvc", ratio(cli, dvc_ms), "ratio", rounds)
        yield Figure(NAME, f"goldfish_in_server_{label}_ms", server, "ms", rounds)
        yield Figure(NAME, f"ratio_in_server_{label}_vs_dvc", ratio(server, dvc_ms), "ratio", rounds)
