"""A Goldfish project wired to the GCE simulator: fake Compute API, GCS emulator, local registry.

Every piece the production code talks to is reached only through the contract's overrides
(``gce.api_endpoint``, ``STORAGE_EMULATOR_HOST``, ``GCE_METADATA_HOST`` in each sandbox): the
backend under test runs its production path, and each "VM" executes the real startup script
and agent, whose ``docker run`` goes to the local engine after a pull from the local registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from goldfish.project import initialize_project
from goldfish.storage.gcs import GcsStorage
from goldfish.yamlfile import load_yaml
from tests.conftest import set_finalization_gate, use_backend
from tests.fakes.fake_compute import FakeCompute
from tests.fakes.gcs_emulator import GcsBucket
from tests.fakes.registry import LocalRegistry
from tests.integration.pipeline_fixtures import start_run, wait_for_pipeline

ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]
RUN_TIMEOUT = 120.0
PROFILE = "sim-cpu"

ONE_STAGE = """\
name: cloud
stages:
  - name: train
    outputs:
      model: {type: directory}
"""


@dataclass
class GceWorld:
    """The simulator pieces and the project using them."""

    root: Path
    compute: FakeCompute
    bucket: GcsBucket
    registry: LocalRegistry

    def storage(self) -> GcsStorage:
        """The project's bucket, through the production adapter."""
        return GcsStorage(self.bucket.name, "proj", "fake-project")

    def configure(self, **warm_pool: Any) -> None:
        """Rewrite goldfish.yaml's gce/storage sections (warm pool settings as keyword arguments)."""
        path = self.root / "goldfish.yaml"
        config = load_yaml(path.read_text(encoding="utf-8"), "goldfish.yaml").data
        config["storage"] = {"backend": "gcs", "gcs": {"bucket": self.bucket.name, "prefix": "proj"}}
        config["gce"] = {
            "project_id": self.compute.project,
            "zones": ZONES,
            "api_endpoint": self.compute.endpoint,
            "image_registry": f"{self.registry.address}/goldfish",
            "registry_login": "token",  # the simulator's registry, like Artifact Registry, wants a login
            "poll_interval_seconds": 0.2,
            "profile_overrides": {
                PROFILE: {"machine_type": "e2-small", "image_family": "debian-12", "spot": True,
                          "on_demand_fallback": True},
            },
            "warm_pool": {"enabled": False, **warm_pool},
        }  # fmt: skip
        config.setdefault("defaults", {})["log_sync_interval"] = 1
        path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def job(self, stage_run_id: str) -> dict[str, Any]:
        """The job.json the server wrote for a stage run."""
        raw = self.storage().read_bytes(f"runs/{stage_run_id}/job.json")
        assert raw is not None, f"no job.json for {stage_run_id}"
        document: dict[str, Any] = json.loads(raw)
        return document

    def consoles(self) -> str:
        """Every sandbox's console (for failure messages)."""
        return "\n".join(
            f"--- {name}\n{inst.console()[-3000:]}" for name, inst in self.compute.instances.items()
        )


def make_world(tmp_path: Path, compute: FakeCompute, bucket: GcsBucket, registry: LocalRegistry) -> GceWorld:
    """A fresh project whose stages with profile ``sim-cpu`` run on the simulator."""
    root = tmp_path / "project"
    initialize_project(str(root), "gceproj")
    set_finalization_gate(root, enabled=False)
    use_backend(root, "process")
    world = GceWorld(root, compute, bucket, registry)
    world.configure()
    return world


def gce_config(**extra: Any) -> dict[str, Any]:
    """A stage config that runs on the simulator."""
    return {"compute": {"profile": PROFILE}, **extra}


async def run_to_end(client: Client, world: GceWorld, **arguments: Any) -> dict[str, Any]:
    """Run workspace ``w1`` and wait for its pipeline run to end; a hang fails with the VMs' consoles."""
    submission = await start_run(client, "w1", **arguments)
    try:
        return await wait_for_pipeline(client, submission["pipeline_run_id"], timeout=RUN_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"the run did not finish; consoles:\n{world.consoles()}")


async def start_until_heartbeat(
    client: Client, world: GceWorld, **arguments: Any
) -> tuple[dict[str, Any], str]:
    """Run workspace ``w1`` and wait until its first stage's VM sends a heartbeat (the job started).

    Returns:
        The run submission and that stage run's id.
    """
    submission = await start_run(client, "w1", **arguments)
    run_id = str(submission["stages"][0]["stage_run_id"])
    storage = world.storage()
    wait_for(lambda: storage.read_bytes(f"runs/{run_id}/heartbeat.json"), RUN_TIMEOUT, "the first heartbeat")
    return submission, run_id


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
