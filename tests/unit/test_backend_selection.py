"""Which backend a stage runs on: ``auto``, an explicit name, and an engine that is not there.

``$DOCKER_HOST`` points at a socket that does not exist, so no Docker engine answers whatever
this machine has; each test asks about its own base image name because the answer is cached
per image for the life of the process.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import cast

import pytest

from goldfish.backends.docker.adaptor import DockerUnavailableError
from goldfish.backends.docker.doctor import docker_ready
from goldfish.backends.factory import (
    BackendRegistry,
    available_backends,
    backend_builder,
    resolve_backend_name,
)
from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.gce.config_check import GceNotConfiguredError
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig
from goldfish.db.database import Database
from goldfish.db.warm_pool import WarmPoolRepository
from goldfish.errors import InvalidArgumentError


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> GoldfishConfig:
    """No Docker engine answers; the config's base image is a name nobody asked about yet."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    config = GoldfishConfig(project_name="p")
    config.docker.base_image = f"goldfish-test-{secrets.token_hex(4)}:latest"
    return config


def test_available_backends_when_listed_include_process_and_docker() -> None:
    assert {"process", "docker"} <= set(available_backends())


@pytest.mark.parametrize("name", available_backends())
def test_backend_table_when_each_name_is_built_gives_a_backend_of_that_name(
    name: str, tmp_path: Path
) -> None:
    settings = BackendSettings(
        config=GoldfishConfig(project_name="p"), project_root=tmp_path, venvs=tmp_path, locks=tmp_path
    )
    assert getattr(backend_builder(name)(settings), "name", None) == name


def test_auto_when_no_engine_answers_picks_process(no_engine: GoldfishConfig) -> None:
    assert docker_ready(no_engine.docker.base_image) is False
    assert resolve_backend_name(None, "auto", no_engine) == "process"
    assert resolve_backend_name("auto", "docker", no_engine) == "process"


def test_explicit_docker_when_no_engine_answers_is_refused_with_a_remedy(no_engine: GoldfishConfig) -> None:
    with pytest.raises(DockerUnavailableError) as raised:
        resolve_backend_name("docker", "process", no_engine)
    assert raised.value.code == "DOCKER_UNAVAILABLE"
    assert "goldfish doctor" in raised.value.remedy


def test_stage_backend_when_given_overrides_the_project_default(no_engine: GoldfishConfig) -> None:
    assert resolve_backend_name("process", "docker", no_engine) == "process"
    assert resolve_backend_name(None, "process", no_engine) == "process"


def test_unknown_backend_when_asked_is_refused_with_the_available_ones(no_engine: GoldfishConfig) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        resolve_backend_name("kubernetes", "auto", no_engine)
    assert raised.value.details["available"] == available_backends()


def test_gce_backend_when_not_configured_is_refused_naming_missing_keys(
    no_engine: GoldfishConfig,
) -> None:
    with pytest.raises(GceNotConfiguredError) as raised:
        resolve_backend_name("gce", "auto", no_engine)
    assert raised.value.details["missing"] == [
        "gce.project_id",
        "gce.zones",
        "gce.image_registry",
        "storage.backend: gcs",
        "storage.gcs.bucket",
    ]


def test_registry_when_asked_twice_returns_one_instance_per_backend(tmp_path: Path) -> None:
    settings = BackendSettings(
        config=GoldfishConfig(project_name="p"), project_root=tmp_path, venvs=tmp_path, locks=tmp_path
    )
    registry = BackendRegistry(settings)

    assert registry.get("docker") is registry.get("docker")
    assert registry.get("process").name == "process"


def test_gce_backend_when_built_uses_the_projects_warm_pool_rows_and_one_compute_client(
    tmp_path: Path,
) -> None:
    rows = WarmPoolRepository(Database(tmp_path / "goldfish.db"))
    settings = BackendSettings(
        config=GoldfishConfig(project_name="p"),
        project_root=tmp_path,
        venvs=tmp_path,
        locks=tmp_path,
        warm_pool=rows,
    )
    backend = cast("GceBackend", BackendRegistry(settings).get("gce"))

    assert backend.pool.repo is rows
    assert backend.pool._api is backend.api
    assert backend.api() is backend.api()
