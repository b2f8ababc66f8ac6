"""Interpreters for the process backend: the project's own, or a venv per requirements.txt hash."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from goldfish.errors import GoldfishError
from goldfish.locks import file_lock


class EnvironmentBuildError(GoldfishError):
    """Installing a workspace's requirements failed."""

    code = "ENVIRONMENT_BUILD_FAILED"
    default_remedy = "Fix requirements.txt (see details.log_tail) and run again."


def requirements_hash(code_dir: Path) -> str | None:
    """sha256 of the workspace's requirements.txt, or None when it has none."""
    path = code_dir / "requirements.txt"
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def environment_key(requirements_id: str | None) -> str:
    """What the stage's environment depends on: interpreter version plus the requirements' content id."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"python-{version}:{requirements_id or 'none'}"


def interpreter_for(code_dir: Path, venvs: Path, log_file: Path) -> str:
    """The Python to run the stage with, creating the cached venv on first use.

    The venv sees the project's site packages, so what is installed already is reused and
    only the rest is fetched.
    """
    digest = requirements_hash(code_dir)
    if digest is None:
        return sys.executable
    venv = venvs / digest
    python = venv / "bin" / "python"
    with file_lock(venvs / f"{digest}.lock", f"Environment {digest}", timeout_seconds=1800):
        if (venv / ".ready").exists():
            return str(python)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            steps = [
                [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-r",
                    str(code_dir / "requirements.txt"),
                ],
            ]
            for step in steps:
                if subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, check=False).returncode != 0:
                    tail = log_file.read_text(errors="replace")[-2000:]
                    raise EnvironmentBuildError(
                        "Installing requirements.txt failed.",
                        details={"log_tail": tail, "log": str(log_file)},
                    )
        (venv / ".ready").touch()
    return str(python)
