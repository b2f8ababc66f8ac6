"""The GCE backend's connections: the project's Compute adapter (made once, on first use) and bucket."""

from __future__ import annotations

import threading

from goldfish.backends.gce.compute import ComputeApi
from goldfish.backends.gce.config_check import GceNotConfiguredError
from goldfish.backends.protocol import BackendSettings
from goldfish.storage.protocol import Storage


class ComputeConnection:
    """The project's Compute adapter, created on first call (its client library loads on its first use)."""

    def __init__(self, project_id: str | None, api_endpoint: str | None) -> None:
        self._project_id = project_id
        self._api_endpoint = api_endpoint
        self._lock = threading.Lock()
        self._api: ComputeApi | None = None

    def __call__(self) -> ComputeApi:
        """The one Compute adapter of this backend."""
        with self._lock:
            if self._api is None:
                self._api = ComputeApi(str(self._project_id), self._api_endpoint)
            return self._api


def project_bucket(settings: BackendSettings) -> Storage:
    """The project's store, which must be GCS for VMs to reach it.

    Raises:
        GceNotConfiguredError: storage.backend is not gcs.
    """
    storage = settings.storage
    if storage is None or storage.scheme != "gs":
        raise GceNotConfiguredError(
            "The gce backend keeps job files, logs and outputs in Cloud Storage, but storage.backend "
            "is not gcs.",
            details={"missing": ["storage.backend: gcs", "storage.gcs.bucket"]},
        )
    return storage
