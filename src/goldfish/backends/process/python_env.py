"""Interpreters for the process backend: the project's own, or a venv per requirements.txt hash.

A stage venv sees everything the server's own interpreter can import, ``goldfish.io`` above
all, wherever that lives: the base interpreter, a virtualenv (the documented install) or an
editable checkout. ``python -m venv --system-site-packages`` alone is not enough, because a venv
created from inside another venv inherits the *base* interpreter's site packages, not the outer
venv's. So the stage venv gets a ``.pth`` file that adds the server's site folders (with their
own ``.pth`` files, which is how editable installs are found) after its own: what the
requirements install wins, what is already there is reused, and pip fetches only what is
missing. When the server's own pip is among those packages, the venv is created without one
(seconds saved per new environment) and runs that pip, which installs into the venv.
"""

from __future__ import annotations

import hashlib
import importlib.util
import site
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from goldfish.errors import GoldfishError
from goldfish.locks import file_lock

BRIDGE_PTH = "goldfish-server-site.pth"


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


def server_site_dirs() -> list[str]:
    """The site folders this interpreter imports from (its venv's, the base's when it sees them, user)."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [folder for folder in dict.fromkeys(folders) if Path(folder).is_dir()]


def _bridge_lines() -> str:
    """The ``.pth`` text: one ``site.addsitedir`` per server site folder (their .pth files apply too)."""
    return "".join(f"import site; site.addsitedir({folder!r})\n" for folder in server_site_dirs())


def _server_pip_bridged() -> bool:
    """True when the server's pip lives in one of the site folders the stage venv will see."""
    spec = importlib.util.find_spec("pip")
    if spec is None or spec.origin is None:
        return False
    return any(Path(spec.origin).is_relative_to(folder) for folder in server_site_dirs())


def pip_source() -> str | None:
    """Where a stage venv's pip comes from: ``server`` (bridged), ``ensurepip``, or None (no pip at all)."""
    if _server_pip_bridged():
        return "server"
    return "ensurepip" if importlib.util.find_spec("ensurepip") is not None else None


def _venv_name(digest: str) -> str:
    """The venv folder: the requirements' hash plus which server interpreter it extends."""
    bridge = hashlib.sha256(f"{sys.executable}\n{_bridge_lines()}".encode()).hexdigest()[:8]
    return f"{digest}-{bridge}"


def interpreter_for(code_dir: Path, venvs: Path, log_file: Path) -> str:
    """The Python to run the stage with, creating the cached venv on first use.

    Raises:
        EnvironmentBuildError: when creating the venv or installing requirements.txt fails.
    """
    digest = requirements_hash(code_dir)
    if digest is None:
        return sys.executable
    name = _venv_name(digest)
    venv = venvs / name
    python = venv / "bin" / "python"
    with file_lock(venvs / f"{name}.lock", f"Environment {digest}", timeout_seconds=1800):
        if (venv / ".ready").exists():
            return str(python)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            no_pip = ["--without-pip"] if _server_pip_bridged() else []
            _run_step([sys.executable, "-m", "venv", "--clear", *no_pip, str(venv)], log, log_file)
            _bridge(python)
            install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            _run_step([*install, "-r", str(code_dir / "requirements.txt")], log, log_file)
        (venv / ".ready").touch()
    return str(python)


def _bridge(python: Path) -> None:
    """Write the ``.pth`` that makes the server's packages importable in the venv of ``python``."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / BRIDGE_PTH).write_text(_bridge_lines(), encoding="utf-8")


def _run_step(step: list[str], log: BinaryIO, log_file: Path) -> None:
    """Run one build step with its output in the build log; raise with the log's tail on failure."""
    done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log_file.read_text(errors="replace")[-2000:]
        raise EnvironmentBuildError(
            "Installing requirements.txt failed.",
            details={"log_tail": tail, "log": str(log_file)},
        )
