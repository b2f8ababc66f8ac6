"""GceBackend.status when the cloud cannot be asked: the run keeps running, then is lost.

The bucket is the outer boundary here, so it is a stand-in whose every read fails the way
``GcsStorage`` reports an unreachable endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from goldfish.backends.gce import backend as gce_backend
from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.gce.compute import InstanceInfo
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig
from goldfish.errors import StorageError


class UnreachableBucket:
    """Every read fails like an unreachable GCS endpoint."""

    scheme = "gs"

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        raise StorageError("Cloud Storage did not answer.", details={"reason": "unreachable"})


def _backend(tmp_path: Path, bucket: object = None, compute: object = None) -> GceBackend:
    config = GoldfishConfig(project_name="p")
    config.gce.poll_interval_seconds = 0.0001
    settings = BackendSettings(
        config=config,
        project_root=tmp_path,
        venvs=tmp_path,
        locks=tmp_path,
        storage=bucket or UnreachableBucket(),  # type: ignore[arg-type]
    )
    return GceBackend(settings, lambda: compute, None)  # type: ignore[arg-type,return-value]


HANDLE = {"stage_run_id": "stage-0123456789ab", "zone": "z", "instance": "vm", "attempt": 1}


def test_status_when_the_bucket_cannot_be_reached_keeps_the_run_running_then_calls_it_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gce_backend, "MAX_STATUS_ERRORS", 3)
    backend = _backend(tmp_path)
    states = []
    for _ in range(3):
        backend._checked.clear()  # skip the poll interval, not the checks
        states.append(backend.status(HANDLE))
    assert [s.state for s in states] == ["running", "running", "lost"]
    assert "could not be checked 3 times" in str(states[-1].detail)
    assert "Cloud Storage did not answer" in str(states[-1].detail)


class EmptyBucket:
    """A reachable bucket holding nothing of the run: no exit code, preemption or failure."""

    scheme = "gs"

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        return None


class OneVm:
    """The Compute adapter for one VM in a given state (None: it is gone)."""

    def __init__(self, info: InstanceInfo | None) -> None:
        self.info = info

    def get(self, zone: str, name: str) -> InstanceInfo | None:
        return self.info


def _vm(status: str, *, spot: bool) -> InstanceInfo:
    return InstanceInfo("vm", "z", status, {}, {}, None, None, spot)


@pytest.mark.parametrize(
    ("info", "state"),
    [
        (_vm("TERMINATED", spot=True), "preempted"),  # reclaimed before the agent could say so
        (_vm("TERMINATED", spot=False), "infra_error"),  # a GPU VM ended by host maintenance
        (None, "lost"),
    ],
)
def test_status_when_the_vm_stopped_without_an_exit_code_retries_unless_the_vm_is_gone(
    tmp_path: Path, info: InstanceInfo | None, state: str
) -> None:
    backend = _backend(tmp_path, EmptyBucket(), OneVm(info))
    handle = {**HANDLE, "logs_dir": str(tmp_path / "logs")}

    status = backend.status(handle)

    assert status.state == state
