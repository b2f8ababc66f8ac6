"""Shared by the GCE launch tests: the untyped client exceptions and a default instance body."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as _core_exc
from google.auth import exceptions as _auth_exc

from goldfish.backends.gce.instances import InstanceBody

# The exception classes are untyped; reach them through Any so strict mypy accepts the calls.
core_exc: Any = _core_exc
auth_exc: Any = _auth_exc


def _body(**changes: Any) -> InstanceBody:
    base: dict[str, Any] = {
        "name": "goldfish-0000aaaa",
        "zone": "us-central1-a",
        "machine_type": "a3-highgpu-1g",
        "accelerator": "nvidia-h100-80gb",
        "gpu_count": 1,
        "spot": True,
        "boot_disk_gb": 500,
        "image_project": "deeplearning-platform-release",
        "image_family": "common-cu124-debian-11",
        "metadata": {"goldfish-job": "{}"},
        "labels": {"goldfish-pool": "cold"},
        "service_account": "vm@p.iam.gserviceaccount.com",
    }
    base.update(changes)
    return InstanceBody(**base)
