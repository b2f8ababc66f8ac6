"""GceBackend.status when the cloud cannot be asked: the run keeps running, then is lost.

The bucket is the outer boundary here, so it is a stand-in whose every read fails the way
``GcsStorage`` reports an unreachable endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from goldfish.backends.gce import backend as gce_backend
from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig
from goldfish.errors import StorageError


class UnreachableBucket:
    """Every read fails like an unreachable GCS endpoint."""

    scheme = "gs"

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        raise StorageError("Cloud Storage did not answer.", details={"reason": "unreachable"})


def _backend(tmp_path: Path) -> GceBackend:
    config = GoldfishConfig(project_name="p")
    config.gce.poll_interval_seconds = 0.0001
    settings = BackendSettings(
        config=config,
        project_root=tmp_path,
        venvs=tmp_path,
        locks=tmp_path,
        storage=UnreachableBucket(),  # type: ignore[arg-type]
    )
    return GceBackend(settings)


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
