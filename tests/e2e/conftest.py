"""Fixtures of the end-to-end tests: a project wired to the GCE simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker_support import require_docker
from tests.e2e.gce_support import GceWorld, make_world
from tests.fakes.fake_compute import FakeCompute
from tests.fakes.gcs_emulator import GcsBucket
from tests.fakes.registry import LocalRegistry


@pytest.fixture
def world(
    tmp_path: Path, gcs_bucket: GcsBucket, fake_compute: FakeCompute, docker_registry: LocalRegistry
) -> GceWorld:
    """A fresh project whose ``sim-cpu`` stages run in the simulator (needs Docker)."""
    require_docker()
    return make_world(tmp_path, fake_compute, gcs_bucket, docker_registry)
