"""Which piece the docker backend lacks (package, engine, base image) and the one command that fixes it."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest

from goldfish.backends.docker.adaptor import DockerUnavailableError
from goldfish.backends.docker.doctor import docker_readiness
from goldfish.backends.factory import resolve_backend_name
from goldfish.config import GoldfishConfig
from tests.docker_support import require_docker


def unknown_image() -> str:
    return f"goldfish-test-{secrets.token_hex(4)}:latest"


def test_readiness_when_the_docker_package_is_missing_names_it_and_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` now raises ImportError

    readiness = docker_readiness("goldfish-base:latest")

    assert readiness.missing == "package"
    assert "docker Python package" in readiness.detail
    assert readiness.fix == f"{sys.executable} -m pip install 'docker>=7.0'"


def test_readiness_when_no_engine_answers_at_docker_host_names_the_engine_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")

    readiness = docker_readiness("goldfish-base:latest")

    assert readiness.missing == "engine"
    assert "not reachable" in readiness.detail
    assert f"DOCKER_HOST=unix://{tmp_path}/absent.sock" in readiness.detail
    assert readiness.fix is not None and readiness.fix.startswith("unset DOCKER_HOST")


def test_readiness_when_the_base_image_is_missing_gives_the_docker_build_of_the_shipped_dockerfile() -> None:
    require_docker()
    image = unknown_image()

    readiness = docker_readiness(image)

    assert readiness.missing == "base_image"
    assert image in readiness.detail
    assert readiness.fix is not None
    command, _, dockerfile = readiness.fix.partition(" - < ")
    assert command.startswith("docker build") and command.endswith(f"-t {image}")
    assert Path(dockerfile).is_file()


def test_readiness_when_engine_and_base_image_are_there_is_ready() -> None:
    require_docker()

    readiness = docker_readiness("goldfish-base:latest")

    assert (readiness.ready, readiness.missing, readiness.fix) == (True, None, None)


def test_explicit_docker_backend_when_the_package_is_missing_says_so_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)
    config = GoldfishConfig(project_name="p")
    config.docker.base_image = unknown_image()  # never asked before: no cached answer

    with pytest.raises(DockerUnavailableError) as raised:
        resolve_backend_name("docker", "process", config)

    assert raised.value.details["missing"] == "package"
    assert "docker Python package" in raised.value.message
    assert "pip install 'docker>=7.0'" in raised.value.remedy


def test_engine_problem_when_the_socket_refuses_this_user_says_join_the_docker_group() -> None:
    from goldfish.backends.docker.adaptor import _engine_problem

    refused = OSError("('Connection aborted.', PermissionError(13, 'Permission denied'))")

    reason, fix = _engine_problem(refused)

    assert reason == "no permission to use its socket"
    assert fix.startswith("sudo usermod -aG docker $USER")
