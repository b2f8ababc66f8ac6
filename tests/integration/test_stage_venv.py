"""The process backend's venv per requirements.txt: built for real with pip, then asked what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import idna
import pytest

import goldfish
from goldfish.backends.process.python_env import interpreter_for

pytestmark = pytest.mark.slow


def ask(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_stage_venv_when_requirements_pin_another_version_uses_it_and_keeps_the_servers_packages(
    tmp_path: Path,
) -> None:
    pin = "3.7" if idna.__version__ != "3.7" else "3.6"  # pure Python, a version the server lacks
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text(f"idna=={pin}\n", encoding="utf-8")

    python = interpreter_for(code, tmp_path / "venvs", tmp_path / "build.log")

    assert Path(python).is_relative_to(tmp_path / "venvs")
    # What the requirements ask for wins, installed into the stage venv ...
    assert ask(python, "import idna; print(idna.__version__)") == pin
    # ... while the server's own packages stay importable (goldfish.io from wherever it is
    # installed) and untouched.
    where = ask(python, "import goldfish.io, goldfish; print(goldfish.__file__)")
    assert where == goldfish.__file__
    assert ask(sys.executable, "import idna; print(idna.__version__)") == idna.__version__


def test_stage_venv_when_built_once_is_reused_for_the_same_requirements(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("PyYAML\n", encoding="utf-8")  # satisfied by the server's

    first = interpreter_for(code, tmp_path / "venvs", tmp_path / "build.log")
    second = interpreter_for(code, tmp_path / "venvs", tmp_path / "build2.log")

    assert first == second
    assert not (tmp_path / "build2.log").exists()  # nothing was built the second time
    assert "Requirement already satisfied: PyYAML" in (tmp_path / "build.log").read_text(encoding="utf-8")
