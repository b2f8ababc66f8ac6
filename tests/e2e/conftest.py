"""Fixtures of the end-to-end tests: a project wired to the GCE simulator; Goldfish installed as users do."""

from __future__ import annotations

import os
import subprocess
import sys
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


REPO = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the test's own installation into a child."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GOLDFISH_PROJECT")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with Goldfish installed from this checkout, not editable: the documented install.

    Built once per test session (``pip install REPO`` with pip's own cache and index settings);
    it sees nothing of the test's interpreter, so a stage that imports goldfish.io from there
    proves the runtime reaches stages from a real install.
    """
    venv = tmp_path_factory.mktemp("installed") / "venv"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input", str(REPO)],
    ]
    for step in steps:
        done = subprocess.run(
            step, env=clean_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
        assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return venv
