"""What GCE refuses, for the fake Compute server: the simulator's rule table, with its sources.

Each rule makes the fake say no where Google says no, in GCE's error shape, so the production
code path is what the tests exercise. A new GCE fact goes in the table below, with its source;
the checks and error shapes that apply it follow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# -- the rule table ------------------------------------------------------------------------------
# Provisioning models per machine type (longest prefix wins; absent: every model).
# Source: Compute Engine docs, "Accelerator-optimized machine family", A3 High
# (https://cloud.google.com/compute/docs/accelerator-optimized-machines): a3-highgpu-1g, -2g and
# -4g are available only as Spot or Flex-start VMs; a3-highgpu-8g takes every model.
PROVISIONING_MODELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("a3-highgpu-1g", frozenset({"SPOT", "FLEX_START"})),
    ("a3-highgpu-2g", frozenset({"SPOT", "FLEX_START"})),
    ("a3-highgpu-4g", frozenset({"SPOT", "FLEX_START"})),
)
# Boot disk types per machine series (prefix). Sources: the same page, "Supported disk types for
# A3" (pd-balanced, pd-ssd, Hyperdisk; no pd-standard); "General-purpose machine family" for
# C4/N4 (Hyperdisk only). Series not listed take every type.
DISK_TYPES: tuple[tuple[str, frozenset[str]], ...] = (
    ("a3-", frozenset({"pd-balanced", "pd-ssd", "hyperdisk-balanced", "hyperdisk-ml", "hyperdisk-extreme"})),
    ("c4-", frozenset({"hyperdisk-balanced", "hyperdisk-extreme", "hyperdisk-throughput"})),
    ("n4-", frozenset({"hyperdisk-balanced", "hyperdisk-extreme", "hyperdisk-throughput"})),
)
# Source: REST reference, instances.insert, AttachedDiskInitializeParams.diskType: "If not
# specified, the default is pd-standard".
DEFAULT_DISK_TYPE = "pd-standard"
# Public image families that exist (images.getFromFamily answers; an insert naming another fails).
# Source: REST reference, images.getFromFamily ("Returns the latest image that is part of an
# image family and is not deprecated"); Deep Learning VM families are renamed over time, so
# tests retire families with FakeCompute.retire_image_family.
IMAGE_FAMILIES: frozenset[tuple[str, str]] = frozenset(
    {
        ("debian-cloud", "debian-12"),
        ("debian-cloud", "debian-11"),
        ("ubuntu-os-cloud", "ubuntu-2204-lts"),
        ("deeplearning-platform-release", "common-cu124-debian-11"),
    }
)
# Service accounts: REST reference, instances.insert, serviceAccounts[] - the API attaches only
# what the body lists (gcloud and the console add the default account themselves). A VM without
# one has no token on its metadata server (see fake_metadata.py), so it cannot reach Cloud
# Storage or a private registry. The default account: Project.defaultServiceAccount
# (REST reference, projects.get), PROJECT_NUMBER-compute@developer.gserviceaccount.com.
# Operations: REST reference, zoneOperations.wait - "waits for no more than the 2 minutes and
# then returns the current state of the operation, which might be DONE or still in progress".
OPERATION_WAIT_MAX_SECONDS = 120.0
# Spot preemption: Compute Engine docs, "Spot VMs", preemption process - the VM gets an ACPI
# soft off (the OS shuts down: systemd stops docker, its containers exit 143) and is switched off
# 30 s later.
PREEMPTION_GRACE_SECONDS = 30.0
# GPU driver: Deep Learning VM images install the NVIDIA driver at first boot only with the
# instance metadata install-nvidia-driver=True (Deep Learning VM docs, "Create a VM with a GPU":
# --metadata="install-nvidia-driver=True"; without it users find the driver-install prompt, i.e.
# no active driver). Other public images carry no NVIDIA driver. A sandbox gets `nvidia-smi` only
# when its VM would have a working driver.
DLVM_PROJECT = "deeplearning-platform-release"
DRIVER_METADATA = ("install-nvidia-driver", "True")


def image_project_of(body: dict[str, Any]) -> str | None:
    """The project publishing the boot disk's image, from an insert body."""
    for disk in body.get("disks") or []:
        if disk.get("boot"):
            source = str((disk.get("initializeParams") or {}).get("sourceImage") or "")
            match = re.search(r"projects/([^/]+)/global/images/", source)
            return match.group(1) if match else None
    return None


def allowed_by_rule(rules: tuple[tuple[str, frozenset[str]], ...], machine: str) -> frozenset[str] | None:
    matches = [(prefix, allowed) for prefix, allowed in rules if machine.startswith(prefix)]
    return max(matches, key=lambda item: len(item[0]))[1] if matches else None


# -- names, limits and error shapes -------------------------------------------------------------

API_ROOT = "https://www.googleapis.com/compute/v1"
RUN_LABEL = "goldfish-run"
CONTAINER_LABEL = "goldfish.stage_run_id"
ATTEMPT_LABEL = "goldfish.attempt"
JOB_KEY = "goldfish-job"
NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
METADATA_KEY_RE = re.compile(r"[a-zA-Z0-9_-]{1,128}")
ZONE_RE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
# Source: REST reference, Metadata.items[]: a value's "size must be less than or equal to 262144
# bytes (256 KiB)"; "The total size of all keys and values must be less than 512 KB".
MAX_METADATA_VALUE = 256 * 1024
MAX_METADATA_TOTAL = 512 * 1024
HTTP_TEXT = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    503: "SERVICE UNAVAILABLE",
}


class ApiError(Exception):
    """An HTTP error in Google's JSON error shape."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def payload(self) -> dict[str, Any]:
        """``{"error": {"code", "message", "errors": [{"reason", "message", "domain"}]}}``."""
        detail = {"message": self.message, "domain": "global", "reason": self.reason}
        return {"error": {"code": self.status, "message": self.message, "errors": [detail]}}


@dataclass
class Fault:
    zone: str
    code: str
    provisioning: str | None
    remaining: int | None
    partial: bool = False
    message: str | None = None
    details: list[dict[str, Any]] | None = None
    http_status: int | None = None
    reason: str = ""

    def matches(self, zone: str, provisioning: str) -> bool:
        return self.zone == zone and self.provisioning in (None, provisioning)


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_fingerprint(content: Any) -> str:
    raw = json.dumps([content, time.monotonic_ns()], sort_keys=True).encode()
    return base64.b64encode(hashlib.sha256(raw).digest()[:8]).decode()


def numeric_id(text: str) -> str:
    return str(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def provisioning_of(resource: dict[str, Any]) -> str:
    scheduling = resource.get("scheduling") or {}
    if scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True:
        return "SPOT"
    return "STANDARD"


def invalid(field_name: str, value: Any, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {why}")


def zonal(value: Any, kind: str, zone: str, field_name: str) -> str:
    """Check a zonal partial or full URL (``zones/Z/<kind>/X``) names ``zone``; the short name."""
    match = re.fullmatch(rf"(?:.*/)?zones/([^/]+)/{kind}/([^/]+)", str(value or ""))
    if match is None:
        raise invalid(field_name, value or "", "Invalid URL or missing value.")
    if match.group(1) != zone:
        raise invalid(field_name, value, f"{kind} is in zone '{match.group(1)}', not in the instance's zone.")
    return match.group(2)


def capacity_message(code: str, project: str, zone: str) -> str:
    where = f"projects/{project}/zones/{zone}"
    if code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS":
        return (
            f"The zone '{where}' does not have enough resources available to fulfill the request.  "
            "'(resource type:compute)'."
        )
    if code == "ZONE_RESOURCE_POOL_EXHAUSTED":
        return (
            f"The zone '{where}' does not have enough resources available to fulfill the request.  "
            "Try a different zone, or try again later."
        )
    if code == "QUOTA_EXCEEDED":
        return f"Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region {zone.rsplit('-', 1)[0]}."
    return f"Operation failed with {code} in zone '{where}'."


def fault_status(code: str) -> int:
    if "QUOTA" in code:
        return 403
    if "RESOURCE_POOL" in code or "STOCKOUT" in code or "UNAVAILABLE" in code:
        return 503
    return 400


def fault_details(code: str, zone: str) -> list[dict[str, Any]] | None:
    if code != "QUOTA_EXCEEDED":
        return None
    quota = {
        "metricName": "compute.googleapis.com/nvidia_h100_gpus",
        "limitName": "NVIDIA-H100-GPUS-per-project-region",
        "dimensions": {"region": zone.rsplit("-", 1)[0]},
        "limit": 0,
    }
    return [{"quotaInfo": quota}]


def check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise invalid("resource.labels", labels, "Labels must be a map.")
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(str(key)):
            raise invalid(f"resource.labels.key[{key}]", key, "Label keys must match [a-z][a-z0-9_-]{0,62}.")
        if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
            raise invalid(f"resource.labels.value[{key}]", value, "Label values must match [a-z0-9_-]{0,63}.")
    return {str(k): str(v) for k, v in labels.items()}


def check_metadata_items(items: Any, field_name: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid(field_name, items, "Items must be a list.")
    result: dict[str, str] = {}
    for item in items:
        key, value = (item or {}).get("key"), (item or {}).get("value", "")
        if not isinstance(key, str) or not METADATA_KEY_RE.fullmatch(key):
            raise invalid(f"{field_name}.key", key, "Metadata keys must match [a-zA-Z0-9_-]{1,128}.")
        if key in result:
            raise ApiError(400, "invalid", f"Metadata has duplicate keys: {key}.")
        value = "" if value is None else str(value)
        if len(value.encode()) > MAX_METADATA_VALUE:
            raise ApiError(400, "invalid", f"Value for metadata key '{key}' exceeds 256 KB.")
        result[key] = value
    if sum(len(k) + len(v.encode()) for k, v in result.items()) >= MAX_METADATA_TOTAL:
        raise ApiError(400, "invalid", "Metadata exceeds the total size limit of 512 KB.")
    return result


# -- insert checks from the rule table ----------------------------------------------------------


def check_machine_rules(body: dict[str, Any], machine: str) -> None:
    """The provisioning model and boot disk type the machine series takes (the rule table)."""
    model = (body.get("scheduling") or {}).get("provisioningModel", "STANDARD")
    models = allowed_by_rule(PROVISIONING_MODELS, machine)
    if models is not None and model not in models:
        raise invalid(
            "resource.scheduling.provisioningModel",
            model,
            f"Machine type {machine} supports only the {' and '.join(sorted(models))} provisioning models.",
        )
    disk_types = allowed_by_rule(DISK_TYPES, machine)
    for i, disk in enumerate(body.get("disks") or []):
        value = (disk.get("initializeParams") or {}).get("diskType")
        disk_type = str(value).rsplit("/", 1)[-1] if value else DEFAULT_DISK_TYPE
        if disk_types is not None and disk_type not in disk_types:
            raise invalid(
                f"resource.disks[{i}].initializeParams.diskType",
                value or disk_type,
                f"Disk type {disk_type} is not supported by machine type {machine}.",
            )


def check_scheduling(body: dict[str, Any], accelerators: list[dict[str, Any]]) -> None:
    scheduling = body.get("scheduling") or {}
    model = scheduling.get("provisioningModel", "STANDARD")
    if model not in ("SPOT", "STANDARD"):
        raise invalid("resource.scheduling.provisioningModel", model, "Must be SPOT or STANDARD.")
    if accelerators and model != "SPOT" and scheduling.get("onHostMaintenance") != "TERMINATE":
        raise ApiError(
            400,
            "badRequest",
            "Instances with guest accelerators do not support live migration. "
            "Set scheduling.onHostMaintenance to TERMINATE.",
        )
