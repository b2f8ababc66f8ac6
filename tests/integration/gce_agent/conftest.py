"""The ``vm`` fixture: a simulated VM (fake tools on PATH, a fake metadata server, the emulated bucket)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldfish.storage.gcs import GcsStorage
from tests.fakes.fake_metadata import FakeMetadataServer
from tests.fakes.gcs_emulator import GcsBucket, GcsEmulator
from tests.integration.gce_agent.vm_support import FAKE_DOCKER, INSTANCE, NO_GPU_SHIM, POWER_SHIM, ZONE, Vm


def _tool(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def vm(tmp_path: Path, gcs_bucket: GcsBucket, gcs_emulator: GcsEmulator) -> Iterator[Vm]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "docker", f"#!{sys.executable}\n{FAKE_DOCKER}")
    for name in ("poweroff", "shutdown", "halt"):
        _tool(bin_dir, name, POWER_SHIM)
    _tool(bin_dir, "nvidia-smi", NO_GPU_SHIM)
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    metadata = FakeMetadataServer(instance_name=INSTANCE, zone=ZONE)
    metadata.start()
    machine = Vm(
        tmp=tmp_path,
        bucket=gcs_bucket,
        emulator=gcs_emulator,
        metadata=metadata,
        store=GcsStorage(gcs_bucket.name),
        root=tmp_path / "jobs",
        bin_dir=bin_dir,
        docker_dir=docker_dir,
        power_log=tmp_path / "poweroff.log",
        console=tmp_path / "agent.log",
    )
    try:
        yield machine
    finally:
        if machine.process is not None and machine.process.poll() is None:
            machine.process.kill()
            machine.process.wait(timeout=10)
        metadata.stop()
