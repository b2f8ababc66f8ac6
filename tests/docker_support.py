"""Real Docker for the tests: find the engine and base image, or skip (fail under ``CI=true``).

``make test`` runs ``scripts/ensure-docker.sh`` first when it runs as root: it installs Debian's
docker.io, starts dockerd and builds ``goldfish-base:latest`` offline. Under ``CI=true`` a
missing engine or base image fails the docker tests; elsewhere they skip with the reason.
Containers the tests start are labelled with their project; :func:`remove_project_containers`
removes them by that label.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goldfish.backends.container import project_label
from goldfish.backends.docker.adaptor import DockerUnavailableError, connect
from goldfish.backends.docker.images import image_info

BASE_IMAGE = "goldfish-base:latest"
SETUP_HINT = "run `bash scripts/ensure-docker.sh` as root (what `make test` does)"


def in_ci() -> bool:
    """True when the CI entry point runs us."""
    return os.environ.get("CI", "").lower() == "true"


def docker_problem(base_image: str = BASE_IMAGE) -> str | None:
    """Why the docker tests cannot run here, or None when they can."""
    try:
        client = connect()
    except DockerUnavailableError as exc:
        return exc.message
    if not image_info(client, base_image)["present"]:
        return f"the base image {base_image} does not exist on the Docker engine"
    return None


def skip_or_fail(message: str, hint: str = SETUP_HINT) -> None:
    """Skip the test with ``message`` and the setup hint; under CI=true fail it instead."""
    message = f"{message}; {hint}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_docker() -> Any:
    """A docker client, or skip the test (fail it under CI=true) with the reason."""
    problem = docker_problem()
    if problem is not None:
        skip_or_fail(f"Docker is not usable here: {problem}")
    return connect()


def project_containers(client: Any, root: Path) -> list[Any]:
    """Every container (running or not) labelled with this project."""
    label = f"goldfish.project={project_label(root)}"
    found: list[Any] = client.containers.list(all=True, filters={"label": label})
    return found


def stage_containers(client: Any, root: Path, stage_run_id: str) -> list[Any]:
    """The containers of one stage run of this project."""
    return [
        c for c in project_containers(client, root) if c.labels.get("goldfish.stage_run_id") == stage_run_id
    ]


def remove_project_containers(client: Any, root: Path) -> None:
    """Force-remove every container of this project (whatever a failing test left behind)."""
    for container in project_containers(client, root):
        with contextlib.suppress(Exception):
            container.remove(force=True)


@contextlib.contextmanager
def containers_removed_at_exit(client: Any, root: Path) -> Iterator[None]:
    """Whatever happens, remove this project's containers afterwards."""
    try:
        yield
    finally:
        remove_project_containers(client, root)
