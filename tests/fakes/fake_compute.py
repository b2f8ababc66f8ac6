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
  rule table in ``compute_rules.py``: provisioning models and boot disk types per machine
  series, image families that exist, machine types a zone withholds (``withhold_machine_type``).
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

The server is built in layers, one job each: ``compute_rules`` (what GCE refuses, its error
shapes), ``compute_store`` (instances, operations, faults), ``compute_runner`` (startup scripts in
sandboxes, power-off, preemption), ``compute_insert`` and ``compute_rest`` (the REST handlers),
``compute_http`` (the HTTP server), ``compute_filter`` (list filters); this module adds the
lifecycle and the test-facing API.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.fakes.compute_http import ComputeHTTPServer
from tests.fakes.compute_insert import InsertApi
from tests.fakes.compute_rest import RestApi
from tests.fakes.compute_rules import PREEMPTION_GRACE_SECONDS, Fault, utc_stamp
from tests.fakes.compute_runner import stop_containers
from tests.fakes.compute_store import FakeInstance

T = TypeVar("T")


class FakeCompute(InsertApi, RestApi):
    """A Compute Engine v1 REST server on ``127.0.0.1`` whose instances are local sandboxes."""

    # The constructor is InstanceStore's (project, storage_emulator_host, sandbox_root, extra_env).
    _server: ComputeHTTPServer | None = None
    _serve_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeCompute:
        """Bind a free loopback port and serve on a background thread."""
        if self._server is None:
            self._server = ComputeHTTPServer(self)
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
        fault = Fault(zone, code, provisioning, times, partial, message, details, http_status)
        with self._lock:
            self._faults.append(fault)

    def fail_insert_http(
        self, zone: str, status: int, reason: str, *, message: str | None = None, times: int | None = None
    ) -> None:
        """Make inserts in ``zone`` fail at once with an HTTP error (e.g. 403 insufficientPermissions)."""
        text = message or f"Insert refused in zone {zone}: {reason}."
        fault = Fault(zone, "", None, times, message=text, http_status=status, reason=reason)
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
                instance.resource["lastStopTimestamp"] = utc_stamp()

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
