"""Goldfish installed into a fresh virtualenv (not editable), used as a person uses it.

The venv holds Goldfish and its dependencies only (no numpy): a workspace whose
``requirements.txt`` asks for numpy runs on the process backend through that venv's
``goldfish run --wait``, so its stages import ``goldfish.io`` from the venv install and numpy
from the stage environment built for the requirements.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import clean_env
from tests.e2e.test_cli_runs import write_pipeline

pytestmark = pytest.mark.slow

TIMEOUT = 600


def run(venv: Path, program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / program), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def project_in(venv: Path, base: Path) -> Path:
    """``goldfish init`` by the venv's executable; stages on the process backend, gate off."""
    done = run(venv, "goldfish", "init", "proj", "--name", "proj", cwd=base)
    assert done.returncode == 0, done.stderr
    root = base / "proj"
    with (root / "goldfish.yaml").open("a", encoding="utf-8") as config:
        config.write("defaults:\n  backend: process\nmemory:\n  finalization_gate: false\n")
    return root


def test_run_on_the_process_backend_when_the_workspace_has_requirements_completes_from_a_venv_install(
    installed_venv: Path, tmp_path: Path
) -> None:
    assert run(installed_venv, "python", "-c", "import numpy", cwd=tmp_path).returncode != 0  # not there
    root = project_in(installed_venv, tmp_path)
    folder = write_pipeline(tmp_path / "pipe")
    (folder / "requirements.txt").write_text("numpy\n", encoding="utf-8")

    done = run(
        installed_venv, "goldfish", "run", str(folder), "--wait", "--json", "--project", str(root), cwd=root
    )

    assert done.returncode == 0, done.stderr
    submission = json.loads(done.stdout)
    assert {stage["stage"]: stage["status"] for stage in submission["stages"]} == {
        "make": "completed",
        "total": "completed",
    }
    total = next(s for s in submission["stages"] if s["stage"] == "total")
    logs = run(installed_venv, "goldfish", "logs", total["stage_run_id"], "--project", str(root), cwd=root)
    assert logs.stdout.splitlines() == ["total=10.0"]


def test_python_m_goldfish_runs_the_command_line_of_a_venv_install(
    installed_venv: Path, tmp_path: Path
) -> None:
    done = run(installed_venv, "python", "-m", "goldfish", "--version", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "0.1.0" in done.stdout


def test_doctor_of_a_venv_install_finds_the_docker_package_installed_with_goldfish(
    installed_venv: Path, tmp_path: Path
) -> None:
    env_host = f"unix://{tmp_path}/absent.sock"  # whatever the engine, the package is what is checked
    done = subprocess.run(
        [str(installed_venv / "bin" / "goldfish"), "doctor", "--json"],
        cwd=tmp_path,
        env=clean_env(DOCKER_HOST=env_host),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    report = json.loads(done.stdout)
    assert report["docker"]["missing"] == "engine", report["docker"]
