"""``instances.insert`` on the fake Compute server: validation by the rule table, faults, the new instance."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from tests.fakes.compute_rules import (
    API_ROOT,
    HTTP_TEXT,
    NAME_RE,
    ApiError,
    Fault,
    capacity_message,
    check_labels,
    check_machine_rules,
    check_metadata_items,
    check_scheduling,
    fault_details,
    fault_status,
    image_project_of,
    invalid,
    numeric_id,
    provisioning_of,
    utc_stamp,
    zonal,
)
from tests.fakes.compute_runner import SandboxRunner
from tests.fakes.compute_store import Request


class InsertApi(SandboxRunner):
    """``instances.insert``: refuse what GCE refuses, fail as configured, else create and boot."""

    # -- instances.insert ------------------------------------------------------------------

    def _insert(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        zone = params["zone"]
        record: dict[str, Any] = {
            "name": body.get("name") if isinstance(body, dict) else None,
            "zone": zone,
            "provisioning_model": provisioning_of(body) if isinstance(body, dict) else None,
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
        name, model = resource["name"], provisioning_of(resource)
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
            instance.boot_image_project = image_project_of(body)
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
            raise invalid("resource.name", name, f"Must be a match of regex '{NAME_RE.pattern}'")
        if not body.get("machineType"):
            raise ApiError(400, "required", "Required field 'resource.machineType' not specified")
        machine = zonal(body["machineType"], "machineTypes", zone, "resource.machineType")
        if (zone, machine) in self._withheld:
            raise invalid(
                "resource.machineType",
                body["machineType"],
                f"Machine type with name '{machine}' does not exist in zone '{zone}'.",
            )
        check_labels(body.get("labels"))
        check_metadata_items((body.get("metadata") or {}).get("items"), "resource.metadata.items")
        accelerators = self._accelerators(body, zone)
        check_scheduling(body, accelerators)
        check_machine_rules(body, machine)
        self._check_image(body)
        return self._resource(body, zone, machine, accelerators)

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
            short = zonal(
                acc.get("acceleratorType"), "acceleratorTypes", zone, f"resource.guestAccelerators[{i}]"
            )
            url = f"{API_ROOT}/projects/{self.project}/zones/{zone}/acceleratorTypes/{short}"
            result.append({"acceleratorType": url, "acceleratorCount": int(acc.get("acceleratorCount", 1))})
        return result

    def _resource(
        self, body: dict[str, Any], zone: str, machine: str, accelerators: list[dict[str, Any]]
    ) -> dict[str, Any]:
        name = body["name"]
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        spot = provisioning_of(body) == "SPOT"
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
            "id": numeric_id(f"{zone}/{name}/{next(self._counter)}"),
            "creationTimestamp": utc_stamp(),
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
            "labels": check_labels(body.get("labels")),
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
                zonal(init["diskType"], "diskTypes", zone, f"resource.disks[{i}].initializeParams.diskType")
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

    def _failed_insert(
        self, fault: Fault, resource: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Any]:
        zone = record["zone"]
        record["error"] = fault.code
        target = self._create(resource, status="TERMINATED") if fault.partial else None
        status = fault.http_status or fault_status(fault.code)
        error: dict[str, Any] = {
            "code": fault.code,
            "message": fault.message or capacity_message(fault.code, self.project, zone),
        }
        details = fault.details if fault.details is not None else fault_details(fault.code, zone)
        if details:
            error["errorDetails"] = details
        op = self._operation(zone, "insert", target, target_name=resource["name"])
        op["error"] = {"errors": [error]}
        op["httpErrorStatusCode"] = status
        op["httpErrorMessage"] = HTTP_TEXT.get(status, "ERROR")
        return op
