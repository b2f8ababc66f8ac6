"""The fake Compute server's state: its instances, operations and faults, and how it records them."""

from __future__ import annotations

import copy
import itertools
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.compute_rules import (
    API_ROOT,
    IMAGE_FAMILIES,
    JOB_KEY,
    ApiError,
    Fault,
    check_metadata_items,
    new_fingerprint,
    numeric_id,
    provisioning_of,
    utc_stamp,
)
from tests.fakes.fake_metadata import NUMERIC_PROJECT_ID, FakeMetadataServer
from tests.fakes.sandbox import Sandbox


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
        return provisioning_of(self.resource)

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


Request = tuple[dict[str, str], dict[str, str], Any]  # path params, query, JSON body


class InstanceStore:
    """Instances, operations, faults and call records of one fake Compute project (under one lock)."""

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
        self._faults: list[Fault] = []
        self._counter = itertools.count(1)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.inserts: list[dict[str, Any]] = []
        self.deletes: list[str] = []
        self.set_metadata_calls: list[dict[str, Any]] = []
        self.set_labels_calls: list[dict[str, Any]] = []
        self.preemptions: list[str] = []
        self.image_families: set[tuple[str, str]] = set(IMAGE_FAMILIES)
        self.operation_seconds = 0.0
        self._withheld: set[tuple[str, str]] = set()
        self.default_service_account = f"{NUMERIC_PROJECT_ID}-compute@developer.gserviceaccount.com"

    # -- lookup and creation ---------------------------------------------------------------

    def _lookup(self, params: dict[str, str]) -> FakeInstance:
        instance = self._instances.get((params["zone"], params["name"]))
        if instance is None:
            where = f"projects/{self.project}/zones/{params['zone']}/instances/{params['name']}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        return instance

    def _create(self, resource: dict[str, Any], *, status: str) -> FakeInstance:
        zone = resource["zone"].rsplit("/", 1)[-1]
        labels = dict(resource["labels"])
        items = check_metadata_items(resource["metadata"].get("items"), "resource.metadata.items")
        instance = FakeInstance(
            name=resource["name"],
            zone=zone,
            project=self.project,
            resource=resource,
            status=status,
            labels=labels,
            label_fingerprint=new_fingerprint(labels),
            metadata=items,
            metadata_fingerprint=new_fingerprint(items),
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

    # -- operations ------------------------------------------------------------------------

    def _operation(
        self, zone: str, kind: str, target: FakeInstance | None, *, target_name: str | None = None
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{next(self._counter):06d}"
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        stamp = utc_stamp()
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": numeric_id(name),
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

    @staticmethod
    def _public(op: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(op)

    def _take_fault(self, zone: str, model: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(zone, model):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None
