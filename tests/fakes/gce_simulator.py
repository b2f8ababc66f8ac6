"""Pytest plugin: the GCE simulator's fixtures (fake Compute API, local image registry).

Enable it with ``pytest_plugins = ["tests.fakes.gce_simulator"]`` (``tests/conftest.py`` does).

* ``fake_compute`` (function scope): a started :class:`FakeCompute` for project ``fake-project``
  whose sandboxes live under the test's ``tmp_path``; the GCS emulator host is
  ``STORAGE_EMULATOR_HOST`` when set at fixture time (else the sandboxes inherit the variable as
  it is when each instance boots). Stopped at teardown, pass or fail: sandboxes and their
  containers killed, servers stopped, threads joined.
* ``docker_registry`` (session scope): a started :class:`LocalRegistry` (``.address`` is
  ``127.0.0.1:PORT``) that wants a login; ``DOCKER_CONFIG`` of the test process points at a
  client config logged in to it (the server pushes with it; the sandboxes never see it).
  Skips with the reason when ``docker-registry`` or a Docker engine is missing; under
  ``CI=true`` it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_support import skip_or_fail
from tests.fakes.fake_compute import FakeCompute
from tests.fakes.registry import LocalRegistry, registry_binary


def registry_problem() -> str | None:
    """Why the local registry cannot be used here, or None when it can."""
    if registry_binary() is None:
        return "docker-registry is not installed (Debian package docker-registry)"
    docker = shutil.which("docker")
    if docker is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`docker info` failed: {exc}"
    if info.returncode != 0:
        return "the Docker engine does not answer `docker info`"
    return None


@pytest.fixture
def fake_compute(tmp_path: Path) -> Iterator[FakeCompute]:
    """A fake Compute Engine API (real client via api_endpoint) whose instances are sandboxes."""
    fake = FakeCompute(
        project="fake-project",
        storage_emulator_host=os.environ.get("STORAGE_EMULATOR_HOST") or None,
        sandbox_root=tmp_path / "gce-sandboxes",
    )
    try:
        fake.start()
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A Docker registry on 127.0.0.1 (plain HTTP), for pushing and pulling stage images."""
    problem = registry_problem()
    if problem is not None:
        skip_or_fail(f"the local image registry is not usable here: {problem}")
    registry = LocalRegistry(root=tmp_path_factory.mktemp("docker-registry"))
    previous = os.environ.get("DOCKER_CONFIG")
    try:
        registry.start()
        # The server side is logged in (as after `gcloud auth configure-docker`); VMs are not.
        config = registry.write_docker_config(tmp_path_factory.mktemp("docker-client-config"))
        os.environ["DOCKER_CONFIG"] = str(config)
        yield registry
    finally:
        if previous is None:
            os.environ.pop("DOCKER_CONFIG", None)
        else:
            os.environ["DOCKER_CONFIG"] = previous
        registry.stop()
