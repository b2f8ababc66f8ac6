"""A fake Compute Engine v1 REST API that the real ``google-cloud-compute`` client talks to.

Built from Google's public REST shapes (camelCase JSON, ``/compute/v1/projects/{project}/...``),
not from Goldfish. Point the client at it with::

    client = compute_v1.InstancesClient(
        credentials=google.auth.credentials.AnonymousCredentials(),
        client_options={"api_endpoint": fake.endpoint},   # "http://127.0.0.1:PORT"
        transport="rest",
    )

Served paths (under ``/compute/v1/projects/{project}``): ``zones/{zone}/instances`` POST (insert)
and GET (list: ``maxResults``, ``pageToken``, ``filter`` with terms ``FIELD = VALUE``,
``!=``, ``eq``/``ne`` (regex), values quoted or bare, terms joined by ``AND`` or juxtaposed
parentheses, FIELD a dotted path such as ``labels.goldfish-run`` or ``status``; ``OR`` and
``:`` are refused with 400); ``zones/{zone}/instances/{name}`` GET
and DELETE; ``.../instances/{name}/setMetadata``, ``.../setLabels`` POST; ``.../serialPort`` GET
(the sandbox's console); ``zones/{zone}/operations/{op}`` GET and ``.../wait`` POST;
``aggregated/instances`` GET.

What the backend author needs to know (verified with google-cloud-compute 1.57):

* Every operation this fake returns is already ``DONE`` unless ``slow_operations(seconds)`` was
  called (then an insert's operation is ``RUNNING`` for that long and ``.../wait`` holds the
  request until it is DONE, at most two minutes, as GCE does). That matters: the client's
  ``ExtendedOperation.result()`` polls through a ``ZoneOperationsClient`` it builds itself
  *without* the caller's ``client_options``, i.e. against the real ``compute.googleapis.com``.
  With an operation that is DONE on arrival no poll happens. To wait explicitly use your own
  ``ZoneOperationsClient`` built with the same ``client_options`` (``wait``/``get`` are served).
* Capacity and quota faults (``fail_zone``) come back the way GCE reports them: the insert
  request itself succeeds (HTTP 200) and returns an Operation with ``status`` DONE,
  ``error.errors[0].code`` (e.g. ``ZONE_RESOURCE_POOL_EXHAUSTED``,
  ``ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS``, ``QUOTA_EXCEEDED``) and ``.message``,
  ``httpErrorStatusCode`` (503 capacity, 403 quota) and ``httpErrorMessage``
  (``SERVICE UNAVAILABLE`` / ``FORBIDDEN``). Through the real client:
  ``op = client.insert(...)`` does not raise; ``op.status == compute_v1.Operation.Status.DONE``
  (an int enum); ``op.error_code`` is 503/403 and ``op.error_message`` the short HTTP text;
  ``op.error.errors[0].code``/``.message`` carry the GCE code and the long message.
  ``op.result()`` raises ``google.api_core.exceptions.ServiceUnavailable`` (503) or
  ``Forbidden`` (403) (``op.exception()`` returns it): ``.code`` is the status, ``.message`` only
  the short HTTP text, ``.errors`` the list of ``compute_v1.Errors`` *messages* (``.code``,
  ``.message``, ``.error_details``; quota faults carry ``error_details[0].quota_info``), and
  ``str(exc)`` reads ``503 SERVICE UNAVAILABLE ZONE_RESOURCE_POOL_EXHAUSTED: The zone ...``.
* ``fail_insert_http`` makes the insert request itself fail: the client raises at once
  (``Forbidden`` for 403, ``BadRequest`` for 400, ...); there ``.errors`` is a list of *dicts*
  (``exc.errors[0]["reason"]``, e.g. ``insufficientPermissions``) and ``.message`` includes the
  method and URL before the server's message.
* setMetadata/setLabels with a stale fingerprint: HTTP 412 ``conditionNotMet`` ->
  ``google.api_core.exceptions.PreconditionFailed``. Missing instance: ``NotFound``; insert of an
  existing name in the zone: ``Conflict`` (409, ``alreadyExists``).
* Insert validation, as GCE: ``name`` must match ``[a-z]([-a-z0-9]{0,61}[a-z0-9])?``;
  ``machineType``, ``acceleratorType`` and ``diskType`` must be zonal URLs
  (``zones/Z/machineTypes/T`` or a full URL) *in the request's zone*; label keys/values are
  checked; a metadata value may hold 256 KiB and all of them 512 KiB; instances with
  ``guestAccelerators`` need ``scheduling.onHostMaintenance = TERMINATE`` unless SPOT; and the
  rule table below: provisioning models and boot disk types per machine series, image families
  that exist, machine types a zone withholds (``withhold_machine_type``).
* ``GET /projects/{project}`` (projects.get) answers ``defaultServiceAccount``;
  ``GET /projects/{p}/global/images/family/{f}`` (images.getFromFamily) answers for the families
  in ``image_families``. An instance's metadata server hands out a token only when the insert
  named a service account.
* ``host_maintenance(name)`` stops a ``TERMINATE`` instance as host maintenance does.
* An instance starts ``RUNNING`` at once, with a :class:`FakeMetadataServer` and a
  :class:`Sandbox` running its ``startup-script``. When the script exits by itself (the agent
  powered off) the instance becomes ``TERMINATED``. Preemption (``preempt``) sets
  ``instance/preempted`` to TRUE and sends SIGTERM to the instance's containers (the guest shuts
  down, systemd stops docker), then after the grace period (30 s by default) kills the sandbox and sets
  ``TERMINATED`` (or deletes the instance when ``scheduling.instanceTerminationAction`` is
  ``DELETE``, as GCE does). Killing a sandbox also removes docker containers labelled
  ``goldfish.stage_run_id=<every goldfish-run label value the instance had>``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from goldfish.backends.gce.vm.layout import job_dir
from tests.fakes.fake_metadata import NUMERIC_PROJECT_ID, FakeMetadataServer
from tests.fakes.http_support import QuietLoopbackServer
from tests.fakes.sandbox import Sandbox

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
T = TypeVar("T")

# -- what GCE refuses: the simulator's rule table --------------------------------------------------
# Each rule makes the fake say no where Google says no, in GCE's error shape, so the production
# code path is what the tests exercise.

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


def _boot_image_project(body: dict[str, Any]) -> str | None:
    """The project publishing the boot disk's image, from an insert body."""
    for disk in body.get("disks") or []:
        if disk.get("boot"):
            source = str((disk.get("initializeParams") or {}).get("sourceImage") or "")
            match = re.search(r"projects/([^/]+)/global/images/", source)
            return match.group(1) if match else None
    return None


def _allowed(rules: tuple[tuple[str, frozenset[str]], ...], machine: str) -> frozenset[str] | None:
    matches = [(prefix, allowed) for prefix, allowed in rules if machine.startswith(prefix)]
    return max(matches, key=lambda item: len(item[0]))[1] if matches else None


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
class _Fault:
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


@dataclass
class FakeInstance:
    """One instance as the fake holds it. Read its fields; change it through the API."""

    name: str
    zone: str
    project: str
    resource: dict[str, Any]
    status: str = "RUNNING"
    labels: dict[str, str] = field(default_factory=dict)
    label_fingerprint: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    metadata_fingerprint: str = ""
    metadata_server: FakeMetadataServer | None = None
    sandbox: Sandbox | None = None
    run_labels_seen: set[str] = field(default_factory=set)
    created_at: float = field(default_factory=time.time)
    boot_image_project: str | None = None

    @property
    def provisioning_model(self) -> str:
        """``SPOT`` or ``STANDARD``."""
        return _provisioning(self.resource)

    @property
    def machine_type(self) -> str:
        """The machine type's short name."""
        return str(self.resource["machineType"]).rsplit("/", 1)[-1]

    def console(self) -> str:
        """The sandbox's console output (empty when no startup script ran)."""
        return "" if self.sandbox is None else self.sandbox.console()

    def to_json(self) -> dict[str, Any]:
        """The Instance resource as ``instances.get`` returns it."""
        body = copy.deepcopy(self.resource)
        body["status"] = self.status
        body["labels"] = dict(self.labels)
        body["labelFingerprint"] = self.label_fingerprint
        body["metadata"] = {
            "kind": "compute#metadata",
            "fingerprint": self.metadata_fingerprint,
            "items": [{"key": k, "value": v} for k, v in self.metadata.items()],
        }
        if not self.labels:
            del body["labels"]
        return body


# -- small pure helpers ----------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _fingerprint(content: Any) -> str:
    raw = json.dumps([content, time.monotonic_ns()], sort_keys=True).encode()
    return base64.b64encode(hashlib.sha256(raw).digest()[:8]).decode()


def _numeric_id(text: str) -> str:
    return str(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def _provisioning(resource: dict[str, Any]) -> str:
    scheduling = resource.get("scheduling") or {}
    if scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible") is True:
        return "SPOT"
    return "STANDARD"


def _invalid(field_name: str, value: Any, why: str) -> ApiError:
    return ApiError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {why}")


def _zonal(value: Any, kind: str, zone: str, field_name: str) -> str:
    """Check a zonal partial or full URL (``zones/Z/<kind>/X``) names ``zone``; the short name."""
    match = re.fullmatch(rf"(?:.*/)?zones/([^/]+)/{kind}/([^/]+)", str(value or ""))
    if match is None:
        raise _invalid(field_name, value or "", "Invalid URL or missing value.")
    if match.group(1) != zone:
        raise _invalid(
            field_name, value, f"{kind} is in zone '{match.group(1)}', not in the instance's zone."
        )
    return match.group(2)


def _capacity_message(code: str, project: str, zone: str) -> str:
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


def _fault_status(code: str) -> int:
    if "QUOTA" in code:
        return 403
    if "RESOURCE_POOL" in code or "STOCKOUT" in code or "UNAVAILABLE" in code:
        return 503
    return 400


def _fault_details(code: str, zone: str) -> list[dict[str, Any]] | None:
    if code != "QUOTA_EXCEEDED":
        return None
    quota = {
        "metricName": "compute.googleapis.com/nvidia_h100_gpus",
        "limitName": "NVIDIA-H100-GPUS-per-project-region",
        "dimensions": {"region": zone.rsplit("-", 1)[0]},
        "limit": 0,
    }
    return [{"quotaInfo": quota}]


def _check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise _invalid("resource.labels", labels, "Labels must be a map.")
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(str(key)):
            raise _invalid(f"resource.labels.key[{key}]", key, "Label keys must match [a-z][a-z0-9_-]{0,62}.")
        if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
            raise _invalid(
                f"resource.labels.value[{key}]", value, "Label values must match [a-z0-9_-]{0,63}."
            )
    return {str(k): str(v) for k, v in labels.items()}


def _check_metadata_items(items: Any, field_name: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _invalid(field_name, items, "Items must be a list.")
    result: dict[str, str] = {}
    for item in items:
        key, value = (item or {}).get("key"), (item or {}).get("value", "")
        if not isinstance(key, str) or not METADATA_KEY_RE.fullmatch(key):
            raise _invalid(f"{field_name}.key", key, "Metadata keys must match [a-zA-Z0-9_-]{1,128}.")
        if key in result:
            raise ApiError(400, "invalid", f"Metadata has duplicate keys: {key}.")
        value = "" if value is None else str(value)
        if len(value.encode()) > MAX_METADATA_VALUE:
            raise ApiError(400, "invalid", f"Value for metadata key '{key}' exceeds 256 KB.")
        result[key] = value
    if sum(len(k) + len(v.encode()) for k, v in result.items()) >= MAX_METADATA_TOTAL:
        raise ApiError(400, "invalid", "Metadata exceeds the total size limit of 512 KB.")
    return result


# -- list filters -------------------------------------------------------------------------------

_TERM_RE = re.compile(
    r"""\s*\(?\s*(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|\beq\b|\bne\b)\s*"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s()]+)\s*\)?\s*(?:\bAND\b)?""",
    re.IGNORECASE,
)


def parse_filter(expr: str) -> list[tuple[str, str, str]]:
    """``labels.a = "x" AND (name != y)`` -> ``[(field, op, value), ...]`` (terms are ANDed)."""
    terms: list[tuple[str, str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        match = _TERM_RE.match(expr, pos)
        if match is None or match.end() == pos:
            raise ApiError(400, "invalid", f"Invalid list filter expression: {expr!r}.")
        value = match.group("value")
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1]) if value[0] == '"' else value[1:-1]
        terms.append((match.group("field"), match.group("op").lower(), value))
        pos = match.end()
    return terms


def _filter_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_value(resource: dict[str, Any], path: str) -> str | None:
    current: Any = resource
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return _filter_text(current)


def _term_matches(resource: dict[str, Any], term: tuple[str, str, str]) -> bool:
    path, op, wanted = term
    actual = _field_value(resource, path)
    if op in ("eq", "ne"):
        hit = actual is not None and re.fullmatch(wanted, actual) is not None
        return hit if op == "eq" else not hit
    hit = actual == wanted
    return hit if op == "=" else not hit


def matches_filter(resource: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    """Whether an instance resource satisfies every term."""
    return all(_term_matches(resource, term) for term in terms)


# -- docker clean-up --------------------------------------------------------------------------


def _job_containers(docker: str, job: str) -> list[str]:
    run_id, _, attempt = job.partition(":")
    listed = subprocess.run(
        [
            docker,
            "ps",
            "-q",
            "--filter",
            f"label={CONTAINER_LABEL}={run_id}",
            "--filter",
            f"label={ATTEMPT_LABEL}={attempt}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return listed.stdout.split()


def stop_containers(jobs: set[str]) -> None:
    """Send SIGTERM to the running containers of the given jobs (what a guest shutdown does to docker)."""
    docker = shutil.which("docker")
    if docker is None:
        return
    for job in sorted(jobs):
        try:
            ids = _job_containers(docker, job)
            if ids:
                subprocess.run(
                    [docker, "kill", "--signal", "TERM", *ids], capture_output=True, timeout=30, check=False
                )
        except (OSError, subprocess.SubprocessError):
            continue


def remove_containers(jobs: set[str]) -> None:
    """``docker rm -f`` every container of the given ``run_id:attempt`` jobs (best effort)."""
    docker = shutil.which("docker")
    if docker is None:
        return
    for job in sorted(jobs):
        run_id, _, attempt = job.partition(":")
        try:
            listed = subprocess.run(
                [
                    docker,
                    "ps",
                    "-aq",
                    "--filter",
                    f"label={CONTAINER_LABEL}={run_id}",
                    "--filter",
                    f"label={ATTEMPT_LABEL}={attempt}",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            ids = listed.stdout.split()
            if ids:
                subprocess.run([docker, "rm", "-f", *ids], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            continue


def remove_job_dirs(jobs: set[str]) -> None:
    """Delete the job folders of the given ``run_id:attempt`` jobs (a deleted VM's disk goes with it).

    Sandboxes share this machine's file system, so the agent's job folders would pile up otherwise.
    """
    for job in jobs:
        run_id, _, attempt = job.partition(":")
        if attempt.isdigit():
            shutil.rmtree(job_dir(run_id, int(attempt)), ignore_errors=True)


# -- HTTP plumbing ----------------------------------------------------------------------------

_P = r"^/compute/v1/projects/(?P<project>[^/]+)"
_IMG = r"^/compute/v1/projects/(?P<image_project>[^/]+)/global/images/family/(?P<family>[^/]+)$"
_I = _P + r"/zones/(?P<zone>[^/]+)/instances"
_O = _P + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_I + r"$"), "_insert"),
    ("GET", re.compile(_I + r"$"), "_list"),
    ("GET", re.compile(_I + r"/(?P<name>[^/]+)$"), "_get"),
    ("DELETE", re.compile(_I + r"/(?P<name>[^/]+)$"), "_delete"),
    ("POST", re.compile(_I + r"/(?P<name>[^/]+)/setMetadata$"), "_set_metadata"),
    ("POST", re.compile(_I + r"/(?P<name>[^/]+)/setLabels$"), "_set_labels"),
    ("GET", re.compile(_I + r"/(?P<name>[^/]+)/serialPort$"), "_serial_port"),
    ("GET", re.compile(_O + r"$"), "_get_operation"),
    ("POST", re.compile(_O + r"/wait$"), "_wait_operation"),
    ("GET", re.compile(_P + r"/aggregated/instances$"), "_aggregated_list"),
    ("GET", re.compile(_P + r"$"), "_get_project"),
    ("GET", re.compile(_IMG), "_image_from_family"),
]

Request = tuple[dict[str, str], dict[str, str], Any]  # path params, query, JSON body


class _Handler(BaseHTTPRequestHandler):
    timeout = 30  # a client that stops sending cannot hold a thread forever
    server: _ComputeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the test output is not a request log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body()
            status, payload = self.server.fake.dispatch(method, unquote(url.path), query, body)
        except ApiError as exc:
            status, payload = exc.status, exc.payload()
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length == 0:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc


class _ComputeHTTPServer(QuietLoopbackServer):
    def __init__(self, fake: FakeCompute) -> None:
        self.fake = fake
        super().__init__(_Handler)


# -- the fake ---------------------------------------------------------------------------------


class FakeCompute:
    """A Compute Engine v1 REST server on ``127.0.0.1`` whose instances are local sandboxes."""

    def __init__(
        self,
        *,
        project: str = "fake-project",
        storage_emulator_host: str | None = None,
        sandbox_root: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.project = project
        self.storage_emulator_host = storage_emulator_host
        self.extra_env = dict(extra_env or {})
        self._own_root = sandbox_root is None
        self.sandbox_root = sandbox_root or Path(tempfile.mkdtemp(prefix="goldfish-fake-gce-"))
        self._lock = threading.RLock()
        self._instances: dict[tuple[str, str], FakeInstance] = {}
        self._operations: dict[tuple[str, str], dict[str, Any]] = {}
        self._done_at: dict[tuple[str, str], float] = {}
        self._faults: list[_Fault] = []
        self._counter = itertools.count(1)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: _ComputeHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.inserts: list[dict[str, Any]] = []
        self.deletes: list[str] = []
        self.set_metadata_calls: list[dict[str, Any]] = []
        self.set_labels_calls: list[dict[str, Any]] = []
        self.preemptions: list[str] = []
        self.image_families: set[tuple[str, str]] = set(IMAGE_FAMILIES)
        self.operation_seconds = 0.0
        self._withheld: set[tuple[str, str]] = set()
        self.default_service_account = f"{NUMERIC_PROJECT_ID}-compute@developer.gserviceaccount.com"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeCompute:
        """Bind a free loopback port and serve on a background thread."""
        if self._server is None:
            self._server = _ComputeHTTPServer(self)
            self._serve_thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-compute",
                daemon=True,
            )
            self._serve_thread.start()
        return self

    def __enter__(self) -> FakeCompute:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The base URL for ``client_options={"api_endpoint": ...}``."""
        if self._server is None:
            raise RuntimeError("FakeCompute is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Kill every sandbox (and its containers), stop every server, join every thread."""
        self._stopping.set()
        with self._lock:
            instances = list(self._instances.values())
        for instance in instances:
            self._power_off(instance)
            if instance.metadata_server is not None:
                instance.metadata_server.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=10)
        if self._own_root:
            shutil.rmtree(self.sandbox_root, ignore_errors=True)

    # -- test-facing API -------------------------------------------------------------------

    @property
    def instances(self) -> dict[str, FakeInstance]:
        """A snapshot: instance name -> instance (the last inserted wins if two zones share a name)."""
        with self._lock:
            return {inst.name: inst for inst in sorted(self._instances.values(), key=lambda i: i.created_at)}

    def instance(self, name: str, zone: str | None = None) -> FakeInstance:
        """The live instance called ``name`` (in ``zone`` when given); KeyError if there is none."""
        with self._lock:
            for (inst_zone, inst_name), inst in self._instances.items():
                if inst_name == name and zone in (None, inst_zone):
                    return inst
        raise KeyError(f"no instance {name!r}" + (f" in {zone}" if zone else ""))

    def fail_zone(
        self,
        zone: str,
        code: str = "ZONE_RESOURCE_POOL_EXHAUSTED",
        *,
        provisioning: str | None = None,
        times: int | None = None,
        partial: bool = False,
        message: str | None = None,
        details: list[dict[str, Any]] | None = None,
        http_status: int | None = None,
    ) -> None:
        """Make inserts in ``zone`` fail like GCE: a DONE Operation carrying ``error.errors[0].code``.

        Args:
            zone: the zone whose inserts fail.
            code: the GCE error code (ZONE_RESOURCE_POOL_EXHAUSTED, ..._WITH_DETAILS, QUOTA_EXCEEDED).
            provisioning: only inserts with this model (``SPOT``/``STANDARD``); None for both.
            times: fail only this many matching inserts; None for every one.
            partial: leave a TERMINATED instance behind (the backend must delete it).
            message: the error message (default: GCE's wording for the code).
            details: ``errorDetails`` for the error (default: quotaInfo for QUOTA_EXCEEDED).
            http_status: ``httpErrorStatusCode`` (default 503 capacity, 403 quota).
        """
        if provisioning not in (None, "SPOT", "STANDARD"):
            raise ValueError(f"provisioning must be None, 'SPOT' or 'STANDARD', not {provisioning!r}")
        fault = _Fault(zone, code, provisioning, times, partial, message, details, http_status)
        with self._lock:
            self._faults.append(fault)

    def fail_insert_http(
        self, zone: str, status: int, reason: str, *, message: str | None = None, times: int | None = None
    ) -> None:
        """Make inserts in ``zone`` fail at once with an HTTP error (e.g. 403 insufficientPermissions)."""
        text = message or f"Insert refused in zone {zone}: {reason}."
        fault = _Fault(zone, "", None, times, message=text, http_status=status, reason=reason)
        with self._lock:
            self._faults.append(fault)

    def slow_operations(self, seconds: float) -> None:
        """Make every later insert's operation take ``seconds`` to be DONE (the VM boots at once)."""
        self.operation_seconds = seconds

    def withhold_machine_type(self, zone: str, machine_type: str) -> None:
        """``machine_type`` is not offered in ``zone``: inserts there fail as GCE's do."""
        with self._lock:
            self._withheld.add((zone, machine_type))

    def retire_image_family(self, image_project: str, family: str) -> None:
        """The family no longer exists (Deep Learning VM families get renamed)."""
        with self._lock:
            self.image_families.discard((image_project, family))

    def host_maintenance(self, name: str, *, zone: str | None = None) -> None:
        """Host maintenance: a VM with ``onHostMaintenance: TERMINATE`` (every GPU VM) is stopped."""
        instance = self.instance(name, zone)
        if (instance.resource.get("scheduling") or {}).get("onHostMaintenance") != "TERMINATE":
            return  # live-migrated: nothing the guest notices
        self._power_off(instance)
        with self._lock:
            if instance.status == "RUNNING":
                instance.status = "TERMINATED"
                instance.resource["lastStopTimestamp"] = _now()

    def clear_faults(self) -> None:
        """Forget every configured fault."""
        with self._lock:
            self._faults.clear()

    def preempt(
        self, name: str, grace_seconds: float = PREEMPTION_GRACE_SECONDS, *, zone: str | None = None
    ) -> None:
        """Spot preemption: ``preempted`` = TRUE and the guest's shutdown stops its containers (SIGTERM);
        after the grace, power off (TERMINATED or deleted)."""
        instance = self.instance(name, zone)
        with self._lock:
            self.preemptions.append(name)
            jobs = set(instance.run_labels_seen)
        if instance.metadata_server is not None:
            instance.metadata_server.set_preempted(True)
        stop_containers(jobs)
        thread = threading.Thread(
            target=self._finish_preemption,
            args=(instance, grace_seconds),
            name=f"preempt-{name}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, *, what: str = "condition") -> T:
        """Poll ``predicate`` until it returns something truthy (returned); TimeoutError with consoles."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.describe()}")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def describe(self) -> str:
        """Every instance with its status and console output, for failing-test messages."""
        with self._lock:
            instances = list(self._instances.values())
        parts = [
            f"inserts={[(i['name'], i['zone'], i['error']) for i in self.inserts]} deletes={self.deletes}"
        ]
        for inst in instances:
            parts.append(f"--- {inst.zone}/{inst.name} {inst.status} console:\n{inst.console()[-4000:]}")
        return "\n".join(parts)

    # -- request dispatch ------------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Route one request; returns (HTTP status, JSON payload) or raises ApiError."""
        for route_method, pattern, handler_name in _ROUTES:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            params = match.groupdict()
            self._check_scope(params)
            handler: Callable[[Request], tuple[int, Any]] = getattr(self, handler_name)
            return handler((params, query, body))
        raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")

    def _check_scope(self, params: dict[str, str]) -> None:
        if "image_project" in params:  # public images live in their publishers' projects
            return
        if params["project"] != self.project:
            raise ApiError(404, "notFound", f"The resource 'projects/{params['project']}' was not found")
        zone = params.get("zone")
        if zone is not None and not ZONE_RE.fullmatch(zone):
            raise ApiError(
                404, "notFound", f"The resource 'projects/{self.project}/zones/{zone}' was not found"
            )

    # -- instances.insert ------------------------------------------------------------------

    def _insert(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        zone = params["zone"]
        record: dict[str, Any] = {
            "name": body.get("name") if isinstance(body, dict) else None,
            "zone": zone,
            "provisioning_model": _provisioning(body) if isinstance(body, dict) else None,
            "time": time.time(),
            "ok": False,
            "error": None,
            "body": copy.deepcopy(body),
        }
        with self._lock:
            self.inserts.append(record)
        try:
            resource = self._validated_resource(body, zone)
        except ApiError as exc:
            record["error"] = exc.reason
            raise
        name, model = resource["name"], _provisioning(resource)
        with self._lock:
            fault = self._take_fault(zone, model)
            if fault is not None and fault.http_status is not None and not fault.code:
                record["error"] = fault.reason
                raise ApiError(fault.http_status, fault.reason, fault.message or fault.reason)
            if (zone, name) in self._instances:
                record["error"] = "alreadyExists"
                where = f"projects/{self.project}/zones/{zone}/instances/{name}"
                raise ApiError(409, "alreadyExists", f"The resource '{where}' already exists")
            if fault is not None:
                return 200, self._failed_insert(fault, resource, record)
            instance = self._create(resource, status="RUNNING")
            instance.boot_image_project = _boot_image_project(body)
            record["ok"] = True
            self._boot(instance)
            op = self._operation(zone, "insert", instance)
            if self.operation_seconds > 0:
                op["status"] = "RUNNING"
                op["progress"] = 0
                op.pop("endTime", None)
                self._done_at[(zone, op["name"])] = time.monotonic() + self.operation_seconds
            return 200, self._public(op)

    def _validated_resource(self, body: Any, zone: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "required", "Required field 'resource' not specified")
        name = body.get("name")
        if not name:
            raise ApiError(400, "required", "Required field 'resource.name' not specified")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise _invalid("resource.name", name, f"Must be a match of regex '{NAME_RE.pattern}'")
        if not body.get("machineType"):
            raise ApiError(400, "required", "Required field 'resource.machineType' not specified")
        machine = _zonal(body["machineType"], "machineTypes", zone, "resource.machineType")
        if (zone, machine) in self._withheld:
            raise _invalid(
                "resource.machineType",
                body["machineType"],
                f"Machine type with name '{machine}' does not exist in zone '{zone}'.",
            )
        _check_labels(body.get("labels"))
        _check_metadata_items((body.get("metadata") or {}).get("items"), "resource.metadata.items")
        accelerators = self._accelerators(body, zone)
        self._check_scheduling(body, accelerators)
        self._check_machine_rules(body, machine)
        self._check_image(body)
        return self._resource(body, zone, machine, accelerators)

    @staticmethod
    def _check_machine_rules(body: dict[str, Any], machine: str) -> None:
        """The provisioning model and boot disk type the machine series takes (the rule table)."""
        model = (body.get("scheduling") or {}).get("provisioningModel", "STANDARD")
        models = _allowed(PROVISIONING_MODELS, machine)
        if models is not None and model not in models:
            raise _invalid(
                "resource.scheduling.provisioningModel",
                model,
                f"Machine type {machine} supports only the {' and '.join(sorted(models))} "
                "provisioning models.",
            )
        disk_types = _allowed(DISK_TYPES, machine)
        for i, disk in enumerate(body.get("disks") or []):
            value = (disk.get("initializeParams") or {}).get("diskType")
            disk_type = str(value).rsplit("/", 1)[-1] if value else DEFAULT_DISK_TYPE
            if disk_types is not None and disk_type not in disk_types:
                raise _invalid(
                    f"resource.disks[{i}].initializeParams.diskType",
                    value or disk_type,
                    f"Disk type {disk_type} is not supported by machine type {machine}.",
                )

    def _check_image(self, body: dict[str, Any]) -> None:
        for disk in body.get("disks") or []:
            source = str((disk.get("initializeParams") or {}).get("sourceImage") or "")
            match = re.fullmatch(r"(?:.*/)?projects/([^/]+)/global/images/family/([^/]+)", source)
            if match is not None and (match.group(1), match.group(2)) not in self.image_families:
                where = f"projects/{match.group(1)}/global/images/family/{match.group(2)}"
                raise ApiError(404, "notFound", f"The resource '{where}' was not found")

    def _accelerators(self, body: dict[str, Any], zone: str) -> list[dict[str, Any]]:
        result = []
        for i, acc in enumerate(body.get("guestAccelerators") or []):
            short = _zonal(
                acc.get("acceleratorType"), "acceleratorTypes", zone, f"resource.guestAccelerators[{i}]"
            )
            url = f"{API_ROOT}/projects/{self.project}/zones/{zone}/acceleratorTypes/{short}"
            result.append({"acceleratorType": url, "acceleratorCount": int(acc.get("acceleratorCount", 1))})
        return result

    @staticmethod
    def _check_scheduling(body: dict[str, Any], accelerators: list[dict[str, Any]]) -> None:
        scheduling = body.get("scheduling") or {}
        model = scheduling.get("provisioningModel", "STANDARD")
        if model not in ("SPOT", "STANDARD"):
            raise _invalid("resource.scheduling.provisioningModel", model, "Must be SPOT or STANDARD.")
        if accelerators and model != "SPOT" and scheduling.get("onHostMaintenance") != "TERMINATE":
            raise ApiError(
                400,
                "badRequest",
                "Instances with guest accelerators do not support live migration. "
                "Set scheduling.onHostMaintenance to TERMINATE.",
            )

    def _resource(
        self, body: dict[str, Any], zone: str, machine: str, accelerators: list[dict[str, Any]]
    ) -> dict[str, Any]:
        name = body["name"]
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        spot = _provisioning(body) == "SPOT"
        scheduling = {
            "provisioningModel": "SPOT" if spot else "STANDARD",
            "preemptible": spot,
            "automaticRestart": not spot,
            "onHostMaintenance": "TERMINATE" if spot or accelerators else "MIGRATE",
        }
        scheduling.update(body.get("scheduling") or {})
        if spot:
            scheduling.setdefault("instanceTerminationAction", "STOP")
        return {
            "kind": "compute#instance",
            "id": _numeric_id(f"{zone}/{name}/{next(self._counter)}"),
            "creationTimestamp": _now(),
            "name": name,
            "description": body.get("description", ""),
            "tags": body.get("tags") or {},
            "machineType": f"{zone_url}/machineTypes/{machine}",
            "zone": zone_url,
            "networkInterfaces": self._nics(body, zone),
            "disks": self._disks(body, zone, name),
            "serviceAccounts": body.get("serviceAccounts") or [],
            "scheduling": scheduling,
            "guestAccelerators": accelerators,
            "labels": _check_labels(body.get("labels")),
            "metadata": body.get("metadata") or {},
            "selfLink": f"{zone_url}/instances/{name}",
            "cpuPlatform": "Intel Sapphire Rapids",
            "canIpForward": False,
            "deletionProtection": False,
            "startRestricted": False,
        }

    def _nics(self, body: dict[str, Any], zone: str) -> list[dict[str, Any]]:
        nics = copy.deepcopy(body.get("networkInterfaces") or [{}])
        for i, nic in enumerate(nics):
            nic.setdefault("network", f"{API_ROOT}/projects/{self.project}/global/networks/default")
            nic["name"] = f"nic{i}"
            nic["networkIP"] = f"10.128.0.{next(self._counter) % 250 + 2}"
            nic["kind"] = "compute#networkInterface"
        return nics

    def _disks(self, body: dict[str, Any], zone: str, name: str) -> list[dict[str, Any]]:
        disks = []
        for i, disk in enumerate(body.get("disks") or []):
            init = disk.get("initializeParams") or {}
            if init.get("diskType"):
                _zonal(init["diskType"], "diskTypes", zone, f"resource.disks[{i}].initializeParams.diskType")
            disk_name = init.get("diskName") or (name if i == 0 else f"{name}-{i}")
            disks.append(
                {
                    "kind": "compute#attachedDisk",
                    "type": disk.get("type", "PERSISTENT"),
                    "mode": disk.get("mode", "READ_WRITE"),
                    "source": f"{API_ROOT}/projects/{self.project}/zones/{zone}/disks/{disk_name}",
                    "deviceName": disk.get("deviceName") or f"persistent-disk-{i}",
                    "index": i,
                    "boot": bool(disk.get("boot", i == 0)),
                    "autoDelete": bool(disk.get("autoDelete", True)),
                    "diskSizeGb": str(init.get("diskSizeGb", 10)),
                    "interface": disk.get("interface", "SCSI"),
                }
            )
        return disks

    def _take_fault(self, zone: str, model: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(zone, model):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _failed_insert(
        self, fault: _Fault, resource: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Any]:
        zone = record["zone"]
        record["error"] = fault.code
        target = self._create(resource, status="TERMINATED") if fault.partial else None
        status = fault.http_status or _fault_status(fault.code)
        error: dict[str, Any] = {
            "code": fault.code,
            "message": fault.message or _capacity_message(fault.code, self.project, zone),
        }
        details = fault.details if fault.details is not None else _fault_details(fault.code, zone)
        if details:
            error["errorDetails"] = details
        op = self._operation(zone, "insert", target, target_name=resource["name"])
        op["error"] = {"errors": [error]}
        op["httpErrorStatusCode"] = status
        op["httpErrorMessage"] = HTTP_TEXT.get(status, "ERROR")
        return op

    def _create(self, resource: dict[str, Any], *, status: str) -> FakeInstance:
        zone = resource["zone"].rsplit("/", 1)[-1]
        labels = dict(resource["labels"])
        items = _check_metadata_items(resource["metadata"].get("items"), "resource.metadata.items")
        instance = FakeInstance(
            name=resource["name"],
            zone=zone,
            project=self.project,
            resource=resource,
            status=status,
            labels=labels,
            label_fingerprint=_fingerprint(labels),
            metadata=items,
            metadata_fingerprint=_fingerprint(items),
        )
        self._note_run_label(instance)
        self._instances[(zone, instance.name)] = instance
        return instance

    @staticmethod
    def _note_run_label(instance: FakeInstance) -> None:
        """Remember each job (``run_id:attempt``) this VM was given, from its ``goldfish-job`` metadata.

        Only the containers of those jobs die with the VM: another VM may already run a later
        attempt of the same stage run on the shared engine.
        """
        try:
            job = json.loads(instance.metadata.get(JOB_KEY, "") or "{}")
        except ValueError:
            return
        if isinstance(job, dict) and job.get("stage_run_id"):
            instance.run_labels_seen.add(f"{job['stage_run_id']}:{job.get('attempt', 1)}")

    def _boot(self, instance: FakeInstance) -> None:
        accounts = instance.resource.get("serviceAccounts") or []
        server = FakeMetadataServer(
            instance_name=instance.name,
            zone=instance.zone,
            project_id=self.project,
            attributes=instance.metadata,
            service_account=str(accounts[0].get("email")) if accounts else None,
        )
        server.start()
        instance.metadata_server = server
        script = instance.metadata.get("startup-script")
        if script is None:
            return
        directory = self.sandbox_root / f"{instance.zone}-{instance.name}-{next(self._counter)}"
        accelerators = instance.resource.get("guestAccelerators") or []
        gpus = sum(int(acc.get("acceleratorCount", 1)) for acc in accelerators)
        driver = instance.boot_image_project == DLVM_PROJECT and (
            instance.metadata.get(DRIVER_METADATA[0]) == DRIVER_METADATA[1]
        )
        instance.sandbox = Sandbox(
            script,
            gpus=gpus if driver else 0,
            directory=directory,
            metadata_host=server.host,
            storage_emulator_host=self.storage_emulator_host,
            extra_env=self.extra_env,
            on_exit=self._sandbox_exited,
        )
        instance.sandbox.start()

    # -- operations ------------------------------------------------------------------------

    def _operation(
        self, zone: str, kind: str, target: FakeInstance | None, *, target_name: str | None = None
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{next(self._counter):06d}"
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        stamp = _now()
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": _numeric_id(name),
            "name": name,
            "zone": zone_url,
            "operationType": kind,
            "targetLink": f"{zone_url}/instances/{target.name if target else target_name}",
            "status": "DONE",
            "user": f"fake@{self.project}.iam.gserviceaccount.com",
            "progress": 100,
            "insertTime": stamp,
            "startTime": stamp,
            "endTime": stamp,
            "selfLink": f"{zone_url}/operations/{name}",
        }
        if target is not None:
            op["targetId"] = target.resource["id"]
        self._operations[(zone, name)] = op
        return op

    def _get_operation(self, request: Request) -> tuple[int, Any]:
        params = request[0]
        key = (params["zone"], params["op"])
        with self._lock:
            op = self._operations.get(key)
            done_at = self._done_at.get(key)
        if op is None:
            where = f"projects/{self.project}/zones/{params['zone']}/operations/{params['op']}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        with self._lock:
            if done_at is not None and time.monotonic() >= done_at:
                del self._done_at[key]
                op.update(status="DONE", progress=100, endTime=_now())
            return 200, self._public(op)

    def _wait_operation(self, request: Request) -> tuple[int, Any]:
        """zoneOperations.wait: hold the request until the operation is DONE (at most two minutes)."""
        params = request[0]
        with self._lock:
            done_at = self._done_at.get((params["zone"], params["op"]))
        if done_at is not None:
            self._stopping.wait(min(max(0.0, done_at - time.monotonic()), OPERATION_WAIT_MAX_SECONDS))
        return self._get_operation(request)

    @staticmethod
    def _public(op: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(op)

    def _get_project(self, request: Request) -> tuple[int, Any]:
        return 200, {
            "kind": "compute#project",
            "id": NUMERIC_PROJECT_ID,
            "name": self.project,
            "selfLink": f"{API_ROOT}/projects/{self.project}",
            "defaultServiceAccount": self.default_service_account,
        }

    def _image_from_family(self, request: Request) -> tuple[int, Any]:
        project, family = request[0]["image_project"], request[0]["family"]
        with self._lock:
            known = (project, family) in self.image_families
        if not known:
            where = f"projects/{project}/global/images/family/{family}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        name = f"{family}-v20260101"
        return 200, {
            "kind": "compute#image",
            "name": name,
            "family": family,
            "status": "READY",
            "selfLink": f"{API_ROOT}/projects/{project}/global/images/{name}",
        }

    # -- get / list / serial port ----------------------------------------------------------

    def _lookup(self, params: dict[str, str]) -> FakeInstance:
        instance = self._instances.get((params["zone"], params["name"]))
        if instance is None:
            where = f"projects/{self.project}/zones/{params['zone']}/instances/{params['name']}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        return instance

    def _get(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            return 200, self._lookup(request[0]).to_json()

    def _list(self, request: Request) -> tuple[int, Any]:
        params, query, _body = request
        zone = params["zone"]
        terms = parse_filter(query.get("filter", ""))
        with self._lock:
            found = [i.to_json() for (z, _n), i in sorted(self._instances.items()) if z == zone]
        items = [item for item in found if matches_filter(item, terms)]
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 500)
        page = items[start : start + size]
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        payload: dict[str, Any] = {
            "kind": "compute#instanceList",
            "id": f"projects/{self.project}/zones/{zone}/instances",
        }
        payload["selfLink"] = f"{zone_url}/instances"
        if page:
            payload["items"] = page
        if start + size < len(items):
            payload["nextPageToken"] = str(start + size)
        return 200, payload

    def _aggregated_list(self, request: Request) -> tuple[int, Any]:
        terms = parse_filter(request[1].get("filter", ""))
        with self._lock:
            found = [(z, i.to_json()) for (z, _n), i in sorted(self._instances.items())]
        scopes: dict[str, Any] = {}
        for zone, item in found:
            if matches_filter(item, terms):
                scopes.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(item)
        payload = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{self.project}/aggregated/instances",
        }
        return 200, {
            **payload,
            "items": scopes,
            "selfLink": f"{API_ROOT}/projects/{self.project}/aggregated/instances",
        }

    def _serial_port(self, request: Request) -> tuple[int, Any]:
        params, query, _body = request
        with self._lock:
            text = self._lookup(params).console()
        start = max(0, int(query.get("start") or 0))
        data = text.encode()
        return 200, {
            "kind": "compute#serialPortOutput",
            "contents": data[start:].decode(errors="replace"),
            "start": str(start),
            "next": str(len(data)),
        }

    # -- setMetadata / setLabels -----------------------------------------------------------

    def _set_metadata(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        body = body if isinstance(body, dict) else {}
        call = {
            "name": params["name"],
            "zone": params["zone"],
            "fingerprint": body.get("fingerprint"),
            "ok": False,
        }
        with self._lock:
            self.set_metadata_calls.append(call)
            instance = self._lookup(params)
            if body.get("fingerprint") != instance.metadata_fingerprint:
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Supplied fingerprint does not match current metadata fingerprint.",
                )
            items = _check_metadata_items(body.get("items"), "metadata.items")
            old, instance.metadata = instance.metadata, items
            instance.metadata_fingerprint = _fingerprint(items)
            call.update(ok=True, items=dict(items), time=time.time())
            self._note_run_label(instance)
            self._sync_metadata_server(instance, old)
            return 200, self._operation(instance.zone, "setMetadata", instance)

    @staticmethod
    def _sync_metadata_server(instance: FakeInstance, old: dict[str, str]) -> None:
        server = instance.metadata_server
        if server is None:
            return
        for key in old.keys() - instance.metadata.keys():
            server.set_attribute(key, None)
        for key, value in instance.metadata.items():
            if old.get(key) != value:
                server.set_attribute(key, value)

    def _set_labels(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        body = body if isinstance(body, dict) else {}
        call = {
            "name": params["name"],
            "zone": params["zone"],
            "fingerprint": body.get("labelFingerprint"),
            "ok": False,
        }
        with self._lock:
            self.set_labels_calls.append(call)
            instance = self._lookup(params)
            if body.get("labelFingerprint") != instance.label_fingerprint:
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Labels fingerprint either invalid or resource labels have changed",
                )
            instance.labels = _check_labels(body.get("labels"))
            instance.label_fingerprint = _fingerprint(instance.labels)
            self._note_run_label(instance)
            call.update(ok=True, labels=dict(instance.labels), time=time.time())
            return 200, self._operation(instance.zone, "setLabels", instance)

    # -- delete, power-off, preemption -----------------------------------------------------

    def _delete(self, request: Request) -> tuple[int, Any]:
        params = request[0]
        with self._lock:
            instance = self._lookup(params)
            del self._instances[(instance.zone, instance.name)]
            self.deletes.append(instance.name)
            op = self._operation(instance.zone, "delete", instance)
        self._power_off(instance)
        if instance.metadata_server is not None:
            instance.metadata_server.stop()
        return 200, op

    def _power_off(self, instance: FakeInstance) -> None:
        """Kill the sandbox's process group and the containers it started (never under the lock)."""
        if instance.sandbox is not None:
            instance.sandbox.kill()
        remove_containers(set(instance.run_labels_seen))
        remove_job_dirs(set(instance.run_labels_seen))

    def _sandbox_exited(self, sandbox: Sandbox) -> None:
        """The startup script ended by itself: the VM powered off -> TERMINATED."""
        if sandbox.killed:
            return
        with self._lock:
            instance = next((i for i in self._instances.values() if i.sandbox is sandbox), None)
            run_ids = set(instance.run_labels_seen) if instance is not None else set()
        if instance is None:
            return
        sandbox.kill_leftovers()
        remove_containers(run_ids)
        with self._lock:
            if instance.status == "RUNNING":
                instance.status = "TERMINATED"
                instance.resource["lastStopTimestamp"] = _now()

    def _finish_preemption(self, instance: FakeInstance, grace_seconds: float) -> None:
        if self._stopping.wait(grace_seconds):
            return
        self._power_off(instance)
        delete = (instance.resource.get("scheduling") or {}).get("instanceTerminationAction") == "DELETE"
        with self._lock:
            key = (instance.zone, instance.name)
            if self._instances.get(key) is not instance:
                return
            if delete:
                del self._instances[key]
            else:
                instance.status = "TERMINATED"
                instance.resource["lastStopTimestamp"] = _now()
        if delete and instance.metadata_server is not None:
            instance.metadata_server.stop()
