"""The one door to the docker SDK: imported on first use, with the install command when missing.

Nothing else in Goldfish imports ``docker`` (ruff banned-api and ``tests/unit/test_layering.py``
check it): the backend, images and doctor call :func:`sdk` for the module and :func:`connect`
for a client, so importing any of them stays cheap and a missing package or a silent engine
becomes one :class:`DockerUnavailableError` with the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from goldfish.errors import GoldfishError

ENGINE_TIMEOUT_SECONDS = 5


class DockerUnavailableError(GoldfishError):
    """The Docker engine cannot be reached (or the docker SDK is not installed)."""

    code = "DOCKER_UNAVAILABLE"
    default_remedy = (
        "Start the Docker engine (goldfish doctor says what is missing) or run on the process backend "
        "(compute.backend: process)."
    )


def sdk() -> Any:
    """The ``docker`` module, imported on first use.

    Raises:
        DockerUnavailableError: when the package is not installed (the remedy installs it).
    """
    try:
        import docker  # noqa: PLC0415 - the SDK loads only when docker is used
    except ImportError:
        raise DockerUnavailableError(
            "The docker Python package is missing from this installation.",
            details={"missing": "package"},
            remedy=package_fix(),
        ) from None
    return docker


def package_fix() -> str:
    """The command that installs the docker SDK into the interpreter running Goldfish."""
    return f"{sys.executable} -m pip install 'docker>=7.0'"


def connect(timeout: int = ENGINE_TIMEOUT_SECONDS) -> Any:
    """A docker SDK client for the engine of ``$DOCKER_HOST`` (or the default socket).

    Raises:
        DockerUnavailableError: when the SDK is missing or the engine does not answer, with the
            one command that fixes it as the remedy.
    """
    docker = sdk()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        reason, fix = _engine_problem(exc)
        raise DockerUnavailableError(
            f"The Docker engine is not reachable ({reason}): {short_error(exc)}",
            details={"missing": "engine", "docker_host": os.environ.get("DOCKER_HOST")},
            remedy=fix,
        ) from None
    return client


def _engine_problem(exc: Exception) -> tuple[str, str]:
    """Why the engine did not answer, and the one command that fixes that."""
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return "no permission to use its socket", "sudo usermod -aG docker $USER  (then log in again)"
    if shutil.which("dockerd") is None and shutil.which("docker") is None:
        return "Docker is not installed", (
            "sudo apt-get install -y docker.io"
            if Path("/etc/debian_version").exists()
            else "install Docker Engine (https://docs.docker.com/engine/install/)"
        )
    host = os.environ.get("DOCKER_HOST")
    if host:
        return f"nothing answers at DOCKER_HOST={host}", "unset DOCKER_HOST  (or start the engine it names)"
    if Path("/run/systemd/system").is_dir():
        return "the engine is not running", "sudo systemctl start docker"
    return "the engine is not running", "sudo sh -c 'dockerd > /var/log/dockerd.log 2>&1 &'"


def short_error(exc: Exception) -> str:
    """The last line of a docker exception's explanation (what went wrong, without the HTTP noise)."""
    text = str(getattr(exc, "explanation", None) or exc)
    return text.strip().splitlines()[-1][:300] if text.strip() else type(exc).__name__
