"""The stage builder rendered for the docker CLI (what the GCE VM agent runs) keeps the same sandbox."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

from goldfish.backends.container import Limits, container_invocation, docker_run_argv, project_label
from goldfish.backends.spec import RunSpec

# -- the builder, rendered for the docker CLI (what the GCE VM agent runs) ----------------------------

CLI_PROBE = """\
import os
from pathlib import Path

inputs, outputs = Path(os.environ["GOLDFISH_INPUTS_DIR"]), Path(os.environ["GOLDFISH_OUTPUTS_DIR"])
print(f"uid={os.getuid()} cwd={os.getcwd()} read={(inputs / 'features' / 'x.txt').read_text()}")
try:
    (inputs / "features" / "x.txt").write_text("changed")
except OSError as exc:
    print(f"input write refused: {exc.strerror}")
(outputs / "report").mkdir()
(outputs / "report" / "r.txt").write_text("written in the container")
"""


def test_docker_run_argv_when_run_by_the_docker_cli_runs_the_stage_in_the_same_sandbox(
    tmp_path: Path, engine: Any
) -> None:
    run_dir = tmp_path / "runs" / "stage-00000000c11a"
    for folder in ("code/modules", "inputs/features", "outputs", "logs", "control", "work"):
        (run_dir / folder).mkdir(parents=True)
    (run_dir / "code" / "modules" / "probe.py").write_text(CLI_PROBE, encoding="utf-8")
    (run_dir / "inputs" / "features" / "x.txt").write_text("original", encoding="utf-8")
    for name in ("config.json", "signals.json"):
        (run_dir / name).write_text("{}", encoding="utf-8")
    for folder in ("outputs", "logs", "work"):
        (run_dir / folder).chmod(0o777)  # the container user owns nothing here
    spec = RunSpec(
        stage_run_id="stage-00000000c11a",
        workspace="alpha",
        stage="probe",
        module="probe",
        code_dir=run_dir / "code",
        run_dir=run_dir,
        inputs={"features": run_dir / "inputs" / "features"},
        outputs_dir=run_dir / "outputs",
        logs_dir=run_dir / "logs",
        config_file=run_dir / "config.json",
        signals_file=run_dir / "signals.json",
        timeout_seconds=60,
        python="python3",
    )
    invocation = container_invocation(
        spec,
        image="goldfish-base:latest",  # no goldfish runtime needed by this probe
        user="1000:1000",
        limits=Limits(memory="256m", cpus=1.0, pids=64, network=False),
        project=project_label(tmp_path),
    )
    argv = docker_run_argv(invocation, detach=False)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    finally:
        with contextlib.suppress(Exception):
            engine.containers.get(invocation.name).remove(force=True)

    assert done.returncode == 0, done.stderr
    out = (run_dir / "logs" / "stdout.log").read_text(encoding="utf-8")
    assert "uid=1000 cwd=/mnt/work read=original" in out
    assert "input write refused: Read-only file system" in out
    assert (run_dir / "logs" / "exit_code.txt").read_text() == "0"
    assert (run_dir / "outputs" / "report" / "r.txt").read_text() == "written in the container"
    assert (run_dir / "inputs" / "features" / "x.txt").read_text() == "original"
