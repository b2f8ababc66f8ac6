"""The thin Compute Engine adapter: the only module that talks to the Compute API.

``google.cloud.compute_v1``, ``google.api_core`` and ``google.auth`` come from
``adaptor.py`` on first use, never at module load: importing this module stays cheap (the
Compute client takes seconds to import) and works without the ``gce`` extra installed.

Every API error leaves this module as a :class:`~goldfish.backends.gce.failures.LaunchFailure`
(see ``failures.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from goldfish.backends.gce import adaptor
from goldfish.backends.gce.failures import (
    FALL_OVER,
    FATAL,
    Category,
    LaunchFailure,
    classify,
    operation_errors,
)
from goldfish.backends.gce.instances import InstanceBody, instance_resource

log = logging.getLogger(__name__)


RPC_TIMEOUT = 60.0  # seconds any single Compute API request may take
_METADATA_RETRIES = 3  # fingerprint races (HTTP 412) retried this many times


@dataclass(frozen=True)
class InstanceInfo:
    """What the server needs to know about one instance."""

    name: str
    zone: str
    status: str  # PROVISIONING | STAGING | RUNNING | STOPPING | SUSPENDED | TERMINATED | ...
    labels: dict[str, str]
    metadata: dict[str, str]
    metadata_fingerprint: str | None
    label_fingerprint: str | None
    spot: bool


def to_instance(body: InstanceBody) -> Any:
    """The ``compute_v1.Instance`` for ``body`` (see :func:`instances.instance_resource`)."""
    return adaptor.compute_v1().Instance(instance_resource(body))


def _info(instance: Any) -> InstanceInfo:
    items = {item.key: item.value for item in instance.metadata.items}
    scheduling = instance.scheduling
    return InstanceInfo(
        name=instance.name,
        zone=instance.zone.rsplit("/", 1)[-1],
        status=instance.status,
        labels=dict(instance.labels),
        metadata=items,
        metadata_fingerprint=instance.metadata.fingerprint or None,
        label_fingerprint=instance.label_fingerprint or None,
        spot=scheduling.provisioning_model == "SPOT" or bool(scheduling.preemptible),
    )


def _label_filter(labels: Mapping[str, str]) -> str:
    return " AND ".join(f'labels.{key} = "{value}"' for key, value in sorted(labels.items()))


class ComputeApi:
    """Instances of one project, through ``google-cloud-compute`` (REST transport).

    The clients are built on first use. Against a local endpoint (``http://...``, localhost,
    127.0.0.1, ``[::1]``) anonymous credentials are used, otherwise application default
    credentials. Every method raises :class:`LaunchFailure` for API failures and bounds each
    request by ``rpc_timeout`` seconds.
    """

    def __init__(self, project: str, api_endpoint: str | None = None, *, rpc_timeout: float = RPC_TIMEOUT):
        self.project = project
        self.api_endpoint = api_endpoint
        self.rpc_timeout = rpc_timeout
        self._lock = threading.Lock()
        self._instances_client: Any = None  # compute_v1.InstancesClient
        self._operations_client: Any = None  # compute_v1.ZoneOperationsClient
        self._projects_client: Any = None  # compute_v1.ProjectsClient
        self._images_client: Any = None  # compute_v1.ImagesClient
        self._default_account: str | None = None

    # ------------------------------------------------------------ public calls

    def insert(self, zone: str, body: InstanceBody, timeout: float = 300) -> None:
        """Create the instance and wait (at most ``timeout`` s) until GCE says it is created."""
        client = self._client()
        with self._translated(zone):
            op = client.insert(
                project=self.project,
                zone=zone,
                instance_resource=to_instance(body),
                retry=None,
                timeout=self.rpc_timeout,
            )
        self._wait(op, zone, timeout)

    def get(self, zone: str, name: str) -> InstanceInfo | None:
        """The instance, or None when it does not exist."""
        client = self._client()
        try:
            with self._translated(zone):
                instance = client.get(
                    project=self.project,
                    zone=zone,
                    instance=name,
                    retry=self._read_retry(),
                    timeout=self.rpc_timeout,
                )
        except LaunchFailure as failure:
            if failure.category == "not_found":
                return None
            raise
        return _info(instance)

    def delete(self, zone: str, name: str, *, wait: bool = True, timeout: float = 300) -> None:
        """Delete the instance; an instance that is already gone is fine."""
        client = self._client()
        try:
            with self._translated(zone):
                op = client.delete(
                    project=self.project, zone=zone, instance=name, retry=None, timeout=self.rpc_timeout
                )
            if wait:
                self._wait(op, zone, timeout)
        except LaunchFailure as failure:
            if failure.category != "not_found":
                raise

    def list(self, zone: str, labels: Mapping[str, str]) -> list[InstanceInfo]:
        """Instances in ``zone`` carrying every one of ``labels`` (filtered by the server)."""
        client = self._client()
        request = adaptor.compute_v1().ListInstancesRequest(project=self.project, zone=zone)
        if labels:
            request.filter = _label_filter(labels)
        with self._translated(zone):
            pager = client.list(request=request, retry=self._read_retry(), timeout=self.rpc_timeout)
            return [_info(instance) for instance in pager]

    def set_metadata(
        self, zone: str, name: str, items: Mapping[str, str | None], timeout: float = 120
    ) -> None:
        """Merge ``items`` into the instance's metadata (None removes a key), fingerprint-checked."""

        def send(client: Any, current: InstanceInfo) -> Any:
            compute_v1 = adaptor.compute_v1()
            merged = _merge(current.metadata, items)
            resource = compute_v1.Metadata(
                fingerprint=current.metadata_fingerprint or "",
                items=[compute_v1.Items(key=k, value=v) for k, v in merged.items()],
            )
            return client.set_metadata(
                project=self.project,
                zone=zone,
                instance=name,
                metadata_resource=resource,
                retry=None,
                timeout=self.rpc_timeout,
            )

        self._fingerprinted(zone, name, send, timeout)

    def set_labels(
        self, zone: str, name: str, labels: Mapping[str, str | None], timeout: float = 120
    ) -> None:
        """Merge ``labels`` into the instance's labels (None removes one), fingerprint-checked."""

        def send(client: Any, current: InstanceInfo) -> Any:
            request = adaptor.compute_v1().InstancesSetLabelsRequest(
                label_fingerprint=current.label_fingerprint or "",
                labels=_merge(current.labels, labels),
            )
            return client.set_labels(
                project=self.project,
                zone=zone,
                instance=name,
                instances_set_labels_request_resource=request,
                retry=None,
                timeout=self.rpc_timeout,
            )

        self._fingerprinted(zone, name, send, timeout)

    def default_service_account(self) -> str:
        """The project's default Compute Engine service account (``projects.get``), looked up once.

        ``instances.insert`` attaches no service account when the body names none (unlike gcloud
        and the console), so the server names this one explicitly.

        Raises:
            LaunchFailure: when the project has none (it was deleted) or the call fails.
        """
        with self._lock:
            if self._default_account is not None:
                return self._default_account
        compute_v1 = adaptor.compute_v1()
        with self._lock:
            if self._projects_client is None:
                self._projects_client = compute_v1.ProjectsClient(
                    credentials=self._credentials(), transport="rest", client_options=self._options()
                )
            client = self._projects_client
        with self._translated(None):
            project = client.get(project=self.project, retry=self._read_retry(), timeout=self.rpc_timeout)
        email = str(project.default_service_account or "")
        if not email:
            raise LaunchFailure(
                f"Project {self.project} has no default Compute Engine service account.",
                category="invalid_request",
                reason_code="NO_DEFAULT_SERVICE_ACCOUNT",
                remedy="Set gce.service_account in goldfish.yaml to a service account the VMs run as "
                "(docs/gce-setup.md, step 2).",
            )
        with self._lock:
            self._default_account = email
        return email

    def image_from_family(self, image_project: str, family: str) -> str:
        """The newest image of ``image_project/family`` (``images.getFromFamily``): its name.

        Raises:
            LaunchFailure: ``invalid_request`` when the family does not exist (or has no usable image).
        """
        compute_v1 = adaptor.compute_v1()
        with self._lock:
            if self._images_client is None:
                self._images_client = compute_v1.ImagesClient(
                    credentials=self._credentials(), transport="rest", client_options=self._options()
                )
            client = self._images_client
        with self._translated(None):
            image = client.get_from_family(
                project=image_project, family=family, retry=self._read_retry(), timeout=self.rpc_timeout
            )
        return str(image.name)

    # ------------------------------------------------------------ plumbing

    def _fingerprinted(self, zone: str, name: str, send: Any, timeout: float) -> None:
        """Read → merge → send with the fingerprint; a concurrent change (412) is retried."""
        client = self._client()
        for attempt in range(_METADATA_RETRIES + 1):
            current = self.get(zone, name)
            if current is None:
                raise LaunchFailure(
                    f"Instance {name} does not exist in zone {zone}.",
                    category="not_found",
                    zone=zone,
                    reason_code="notFound",
                )
            try:
                with self._translated(zone):
                    op = send(client, current)
                self._wait(op, zone, timeout)
                return
            except LaunchFailure as failure:
                if failure.category != "conflict" or attempt == _METADATA_RETRIES:
                    raise
                log.info("fingerprint of %s changed meanwhile; retrying (%s)", name, failure.reason_code)

    def _wait(self, op: Any, zone: str, timeout: float) -> None:
        """Wait for a zone operation to be DONE, then raise its error, classified, if it has one.

        Polls through this object's own ``ZoneOperationsClient`` (``zoneOperations.wait``): the
        client library's ``op.result()`` would poll with a client built without our
        ``api_endpoint``. The operation's ``error.errors`` codes are what get classified.
        """
        deadline = time.monotonic() + timeout
        name = op.name
        while not _is_done(getattr(op, "status", None)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LaunchFailure(
                    f"Operation {name} in zone {zone} did not finish within {timeout:.0f}s.",
                    category="network",
                    zone=zone,
                    reason_code="OPERATION_TIMEOUT",
                )
            try:
                with self._translated(zone):
                    op = self._operations().wait(
                        project=self.project,
                        zone=zone,
                        operation=name,
                        timeout=min(remaining, self.rpc_timeout),
                    )
            except LaunchFailure as failure:
                # zoneOperations.wait holds the request up to two minutes; a read timeout on our
                # side only means the operation is not done yet (GPU inserts often take longer).
                if failure.category != "network":
                    raise
                log.info("operation %s in %s not done yet (%s); waiting on", name, zone, failure.reason_code)
        if _operation_failed(op):
            raise classify(op, zone=zone)

    def _translated(self, zone: str | None) -> _Translate:
        return _Translate(zone)

    def _read_retry(self) -> Any:
        core_exc, core_retry = adaptor.api_exceptions(), adaptor.api_retry()
        transient = core_retry.if_exception_type(core_exc.ServiceUnavailable, core_exc.InternalServerError)
        return core_retry.Retry(
            predicate=transient, initial=0.2, maximum=2.0, multiplier=2.0, timeout=self.rpc_timeout
        )

    def connect(self) -> None:
        """Create the clients now.

        Importing the client library takes about a second, which must not fall between claiming
        a warm VM and handing it its job.
        """
        self._client()

    def _client(self) -> Any:
        with self._lock:
            if self._instances_client is None:
                self._build_clients()
            assert self._instances_client is not None
            return self._instances_client

    def _operations(self) -> Any:
        with self._lock:
            if self._operations_client is None:
                self._build_clients()
            assert self._operations_client is not None
            return self._operations_client

    def _build_clients(self) -> None:
        compute_v1 = adaptor.compute_v1()
        credentials = self._credentials()
        options = self._options()
        self._instances_client = compute_v1.InstancesClient(
            credentials=credentials, transport="rest", client_options=options
        )
        self._operations_client = compute_v1.ZoneOperationsClient(
            credentials=credentials, transport="rest", client_options=options
        )

    def _options(self) -> dict[str, str] | None:
        return {"api_endpoint": self.api_endpoint} if self.api_endpoint else None

    def _credentials(self) -> Any:
        auth_exc = adaptor.auth_exceptions()
        try:
            return adaptor.google_credentials(self.api_endpoint)
        except auth_exc.DefaultCredentialsError as exc:
            raise LaunchFailure(
                f"No Google Cloud credentials found: {exc}",
                category="credentials",
                reason_code="DefaultCredentialsError",
            ) from exc


class _Translate:
    """``with _Translate(zone):`` re-raises API failures as classified :class:`LaunchFailure`."""

    def __init__(self, zone: str | None):
        self.zone = zone

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, LaunchFailure) and isinstance(exc, adaptor.call_errors()):
            raise classify(exc, zone=self.zone) from exc


def _is_done(status: Any) -> bool:
    return bool(getattr(status, "name", status) == "DONE")


def _operation_failed(op: Any) -> bool:
    status = getattr(op, "http_error_status_code", None) or 0
    return bool(operation_errors(op)) or int(status) >= 400


def _merge(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


__all__ = [
    "FALL_OVER",
    "FATAL",
    "Category",
    "ComputeApi",
    "InstanceInfo",
    "LaunchFailure",
    "classify",
    "to_instance",
]
