"""The thin Compute Engine adapter: the only module that talks to the Compute API.

``google.cloud.compute_v1``, ``google.api_core`` and ``google.auth`` are imported inside the
functions that need them, never at module load: importing this module stays cheap (the
Compute client takes seconds to import) and works without the ``gce`` extra installed.

Every API error leaves this module as a :class:`LaunchFailure` with a ``category`` the launcher
acts on (``capacity``/``quota`` fall over to the next zone, ``credentials``/``invalid_request``
stop at once, ``network`` retries) — see :func:`classify`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from goldfish.backends.gce.instances import InstanceBody, instance_resource
from goldfish.errors import GoldfishError

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud import compute_v1

log = logging.getLogger(__name__)

Category = Literal[
    "capacity", "quota", "credentials", "invalid_request", "network", "not_found", "conflict", "unknown"
]
FALL_OVER: frozenset[str] = frozenset({"capacity", "quota"})
FATAL: frozenset[str] = frozenset({"credentials", "invalid_request"})

RPC_TIMEOUT = 60.0  # seconds any single Compute API request may take
_METADATA_RETRIES = 3  # fingerprint races (HTTP 412) retried this many times
_ZONE_RE = re.compile(r"\b([a-z]+(?:-[a-z]+)+[0-9]+-[a-z])\b")
_FAILED_ZONE_RE = re.compile(r"zones/([a-z]+(?:-[a-z]+)+[0-9]+-[a-z])'? does not have")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

_REMEDIES: dict[str, str] = {
    "capacity": "GCE has no capacity for this machine in that zone right now: list more zones "
    "(gce.zones or the profile's zones), allow on-demand fallback, or try again later.",
    "quota": "Raise the quota named in the message (Cloud console → IAM & Admin → Quotas) or list "
    "zones in another region.",
    "credentials": "Run `gcloud auth application-default login` (or point GOOGLE_APPLICATION_CREDENTIALS "
    "at a service-account key); the account needs roles/compute.instanceAdmin.v1 on gce.project_id, "
    "plus roles/iam.serviceAccountUser to attach gce.service_account, and the Compute API enabled.",
    "invalid_request": "Check the setting the message names: the profile's machine_type, accelerator "
    "and image_family, and the zone names in gce.zones / the profile's zones (the accelerator and "
    "machine type must exist in every listed zone).",
    "network": "Check the connection to the Compute API (and gce.api_endpoint when set), then try again.",
    "not_found": "Check gce.project_id and the zone; the instance may have been deleted already.",
    "conflict": "Someone changed the instance at the same time (or the name is taken); try again.",
    "unknown": "Read the message; if it repeats, look at the server log under .goldfish/logs.",
}


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


class LaunchFailure(GoldfishError):
    """A Compute API call failed; ``category`` says what kind of failure it is.

    Attributes:
        category: ``capacity``, ``quota``, ``credentials``, ``invalid_request``, ``network``,
            ``not_found``, ``conflict`` or ``unknown``.
        zone: The zone the call was about, when known.
        hint_zones: Zones the error message names as having capacity (never the failed zone).
        reason_code: GCE's own code, e.g. ``ZONE_RESOURCE_POOL_EXHAUSTED``, ``QUOTA_EXCEEDED``,
            ``insufficientPermissions``, or ``HTTP_<status>`` / the exception type without one.
    """

    code = "GCE_LAUNCH_FAILED"

    def __init__(
        self,
        message: str,
        *,
        category: Category,
        zone: str | None = None,
        hint_zones: Iterable[str] = (),
        reason_code: str = "",
        remedy: str | None = None,
    ):
        self.category: Category = category
        self.zone = zone
        self.hint_zones = list(hint_zones)
        self.reason_code = reason_code
        details = {
            "category": category,
            "zone": zone,
            "reason_code": reason_code,
            "hint_zones": self.hint_zones,
        }
        super().__init__(message, details=details, remedy=remedy or _REMEDIES[category])
        self.code = f"GCE_{category.upper()}"


# ---------------------------------------------------------------- classification (pure)


@dataclass(frozen=True)
class _Facts:
    """What an exception or a finished operation says, gathered once."""

    status: int | None
    codes: list[str]
    messages: list[str]
    quota_info: bool
    kind: str  # exception type name, or "Operation"


def classify(exc_or_operation: object, *, zone: str | None = None) -> LaunchFailure:
    """Turn a Compute API exception or a failed operation into a :class:`LaunchFailure`.

    Accepts ``google.api_core`` exceptions (``op.result()`` raises one whose ``errors`` are the
    operation's), an operation (anything with ``error.errors``, e.g. a ``compute_v1.Operation``),
    ``google.auth`` errors, connection/timeouts errors, and an existing ``LaunchFailure`` (returned
    as is). GCE's error codes win over the HTTP status: a 503 carrying
    ``ZONE_RESOURCE_POOL_EXHAUSTED`` is ``capacity``, a 403 carrying ``QUOTA_EXCEEDED`` is ``quota``.
    """
    if isinstance(exc_or_operation, LaunchFailure):
        return exc_or_operation
    facts = _facts(exc_or_operation)
    category = _category(facts)
    failed_zone = zone or _failed_zone(facts.messages)
    text = "; ".join(dict.fromkeys(m for m in facts.messages if m)) or facts.kind
    reason = facts.codes[0] if facts.codes else (f"HTTP_{facts.status}" if facts.status else facts.kind)
    where = f" in zone {failed_zone}" if failed_zone else ""
    return LaunchFailure(
        f"Compute API call failed{where} ({category}, {reason}): {text}",
        category=category,
        zone=failed_zone,
        hint_zones=_hint_zones(facts.messages, failed_zone),
        reason_code=reason,
    )


def _facts(obj: object) -> _Facts:
    if _is_operation(obj):
        return _operation_facts(obj)
    from google.api_core import exceptions as core_exc  # noqa: PLC0415

    if isinstance(obj, core_exc.GoogleAPICallError):
        return _call_error_facts(obj)
    kind = type(obj).__name__
    message = str(obj) or kind
    return _Facts(status=None, codes=[], messages=[message], quota_info=False, kind=_kind_of(obj))


def _kind_of(obj: object) -> str:
    """The first class in ``obj``'s MRO whose name the classifier knows, else its own name."""
    for klass in type(obj).__mro__:
        if klass.__name__ in _AUTH_KINDS or klass.__name__ in _NETWORK_KINDS:
            return klass.__name__
    return type(obj).__name__


def _is_operation(obj: object) -> bool:
    error = getattr(obj, "error", None)
    return error is not None and hasattr(error, "errors") and not isinstance(obj, BaseException)


def _operation_facts(op: object) -> _Facts:
    entries = list(getattr(getattr(op, "error", None), "errors", None) or [])
    status = getattr(op, "http_error_status_code", None) or None
    message = getattr(op, "http_error_message", None) or ""
    facts = _entry_facts(entries)
    return _Facts(
        status=int(status) if status else None,
        codes=facts.codes,
        messages=_with(facts.messages, message),
        quota_info=facts.quota_info,
        kind="Operation",
    )


def _call_error_facts(exc: Any) -> _Facts:
    entries = list(exc.errors or [])
    response = getattr(exc, "_response", None)
    if not entries:
        entries = _operation_errors(response)
    facts = _entry_facts(entries)
    codes = list(facts.codes)
    reason = exc.reason
    if reason:
        codes.append(str(reason))
    status = exc.code if isinstance(exc.code, int) else None
    return _Facts(
        status=status,
        codes=codes,
        messages=_with(facts.messages, str(exc.message)),
        quota_info=facts.quota_info or _details_have_quota(exc.details),
        kind=type(exc).__name__,
    )


def _with(messages: list[str], general: str) -> list[str]:
    """``messages`` plus the general one, unless a specific message says it all already."""
    if any(m and m in general for m in messages) or (any(messages) and general.isupper()):
        return messages
    return [*messages, general]


def _field(entry: object, *names: str) -> Any:
    """``entry[name]`` for dicts (REST JSON, camelCase or snake_case), else ``entry.name``."""
    for name in names:
        value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
        if value:
            return value
    return None


def _entry_facts(entries: list[Any]) -> _Facts:
    codes: list[str] = []
    messages: list[str] = []
    quota = False
    for entry in entries:
        code = _field(entry, "code", "reason")
        if code:
            codes.append(str(code))
        messages.append(str(_field(entry, "message") or ""))
        for detail in _field(entry, "error_details", "errorDetails") or []:
            quota = quota or bool(_field(detail, "quota_info", "quotaInfo"))
            info = _field(detail, "error_info", "errorInfo")
            if info:
                messages.extend(str(v) for v in dict(_field(info, "metadatas", "metadata") or {}).values())
    return _Facts(status=None, codes=codes, messages=messages, quota_info=quota, kind="")


def _details_have_quota(details: Iterable[Any]) -> bool:
    for detail in details or ():
        kind = _field(detail, "@type") or type(detail).__name__
        if "QuotaFailure" in str(kind):
            return True
    return False


def _norm(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", code.upper())


_CODE_CATEGORIES: tuple[tuple[Category, tuple[str, ...]], ...] = (
    ("capacity", ("ZONERESOURCEPOOLEXHAUSTED", "RESOURCEPOOLEXHAUSTED", "STOCKOUT")),
    ("quota", ("QUOTAEXCEEDED", "QUOTA")),
    ("network", ("RATELIMITEXCEEDED", "USERRATELIMITEXCEEDED", "BACKENDERROR", "INTERNALERROR")),
    (
        "credentials",
        (
            "INSUFFICIENTPERMISSIONS",
            "ACCESSNOTCONFIGURED",
            "PERMISSIONSERROR",
            "IAMPERMISSIONDENIED",
            "ACCESSTOKENSCOPEINSUFFICIENT",
            "SERVICEACCOUNTACCESSDENIED",
            "AUTHERROR",
            "FORBIDDEN",
            "UNAUTHORIZED",
        ),
    ),
    ("conflict", ("ALREADYEXISTS", "RESOURCEALREADYEXISTS", "CONDITIONNOTMET")),
    ("invalid_request", ("UNSUPPORTEDOPERATION", "INVALID", "BADREQUEST", "INVALIDFIELDVALUE")),
)
_CAPACITY_TEXT = ("does not have enough resources", "resource pool exhausted", "zone_resource_pool_exhausted")
_AUTH_KINDS = ("DefaultCredentialsError", "RefreshError", "ReauthFailError", "OAuthError")
_NETWORK_KINDS = (
    "ConnectionError",
    "Timeout",
    "TimeoutError",
    "TransportError",
    "RetryError",
    "ReadTimeout",
    "ConnectTimeout",
    "ChunkedEncodingError",
)


def _category(facts: _Facts) -> Category:
    by_code = _category_from_codes(facts.codes)
    if by_code in ("capacity", "quota"):
        return by_code
    text = " ".join(facts.messages).lower()
    if any(phrase in text for phrase in _CAPACITY_TEXT):
        return "capacity"
    if facts.quota_info or re.search(r"quota '[^']+' exceeded", text):
        return "quota"
    if by_code is not None:
        return by_code
    return _category_from_status(facts.status, text) or _category_from_kind(facts.kind)


def _category_from_codes(codes: list[str]) -> Category | None:
    normalised = [_norm(code) for code in codes]
    for category, keys in _CODE_CATEGORIES:
        if any(code == key or code.startswith(key) for code in normalised for key in keys):
            return category
    return None  # e.g. notFound: the status and text decide (a missing image is not a missing instance)


def _category_from_status(status: int | None, text: str) -> Category | None:
    category: Category | None = None
    if status is None:
        category = None
    elif status in (401, 403):
        category = "credentials"
    elif status == 404:
        category = "not_found" if ("/instances/" in text or "/operations/" in text) else "invalid_request"
    elif status in (409, 412):
        category = "conflict"
    elif status == 429 or status >= 500:
        category = "network"
    elif 400 <= status < 500:
        category = "invalid_request"
    return category


def _category_from_kind(kind: str) -> Category:
    if kind in _AUTH_KINDS:
        return "credentials"
    if kind in _NETWORK_KINDS or kind.endswith(("Timeout", "TimeoutError")):
        return "network"
    return "unknown"


def _failed_zone(messages: list[str]) -> str | None:
    for message in messages:
        match = _FAILED_ZONE_RE.search(message)
        if match:
            return match.group(1)
    return None


def _hint_zones(messages: list[str], failed_zone: str | None) -> list[str]:
    """Zones named in the messages, other than the one that failed (first mention first)."""
    found = (zone for message in messages for zone in _ZONE_RE.findall(message))
    return [zone for zone in dict.fromkeys(found) if zone != failed_zone]


# ---------------------------------------------------------------- the client


def is_local_endpoint(api_endpoint: str | None) -> bool:
    """Whether ``api_endpoint`` points at a local simulator (then no real credentials are used)."""
    if not api_endpoint:
        return False
    text = api_endpoint.lower()
    return text.startswith("http://") or any(host in text for host in _LOCAL_HOSTS)


def to_instance(body: InstanceBody) -> compute_v1.Instance:
    """The ``compute_v1.Instance`` for ``body`` (see :func:`instances.instance_resource`)."""
    from google.cloud import compute_v1  # noqa: PLC0415

    return compute_v1.Instance(instance_resource(body))


def _api_errors() -> tuple[type[BaseException], ...]:
    """The exception types a Compute call may raise that are failures, not programming errors."""
    import requests  # noqa: PLC0415
    from google.api_core import exceptions as core_exc  # noqa: PLC0415
    from google.auth import exceptions as auth_exc  # noqa: PLC0415

    return (
        core_exc.GoogleAPIError,
        auth_exc.GoogleAuthError,
        requests.RequestException,
        OSError,
    )


def _info(instance: compute_v1.Instance) -> InstanceInfo:
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
        self._instances_client: compute_v1.InstancesClient | None = None
        self._operations_client: compute_v1.ZoneOperationsClient | None = None

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
        from google.cloud import compute_v1  # noqa: PLC0415

        client = self._client()
        request = compute_v1.ListInstancesRequest(project=self.project, zone=zone)
        if labels:
            request.filter = _label_filter(labels)
        with self._translated(zone):
            pager = client.list(request=request, retry=self._read_retry(), timeout=self.rpc_timeout)
            return [_info(instance) for instance in pager]

    def set_metadata(
        self, zone: str, name: str, items: Mapping[str, str | None], timeout: float = 120
    ) -> None:
        """Merge ``items`` into the instance's metadata (None removes a key), fingerprint-checked."""

        def send(client: compute_v1.InstancesClient, current: InstanceInfo) -> Any:
            from google.cloud import compute_v1  # noqa: PLC0415

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

        def send(client: compute_v1.InstancesClient, current: InstanceInfo) -> Any:
            from google.cloud import compute_v1  # noqa: PLC0415

            request = compute_v1.InstancesSetLabelsRequest(
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
        while not _is_done(getattr(op, "status", None)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LaunchFailure(
                    f"Operation {getattr(op, 'name', '?')} in zone {zone} did not finish "
                    f"within {timeout:.0f}s.",
                    category="network",
                    zone=zone,
                    reason_code="OPERATION_TIMEOUT",
                )
            with self._translated(zone):
                op = self._operations().wait(
                    project=self.project,
                    zone=zone,
                    operation=op.name,
                    timeout=min(remaining, self.rpc_timeout),
                )
        if _operation_failed(op):
            raise classify(op, zone=zone)

    def _translated(self, zone: str) -> _Translate:
        return _Translate(zone)

    def _read_retry(self) -> Retry:
        from google.api_core import exceptions as core_exc  # noqa: PLC0415
        from google.api_core import retry as core_retry  # noqa: PLC0415

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

    def _client(self) -> compute_v1.InstancesClient:
        with self._lock:
            if self._instances_client is None:
                self._build_clients()
            assert self._instances_client is not None
            return self._instances_client

    def _operations(self) -> compute_v1.ZoneOperationsClient:
        with self._lock:
            if self._operations_client is None:
                self._build_clients()
            assert self._operations_client is not None
            return self._operations_client

    def _build_clients(self) -> None:
        from google.cloud import compute_v1  # noqa: PLC0415

        credentials = self._credentials()
        options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
        self._instances_client = compute_v1.InstancesClient(
            credentials=credentials, transport="rest", client_options=options
        )
        self._operations_client = compute_v1.ZoneOperationsClient(
            credentials=credentials, transport="rest", client_options=options
        )

    def _credentials(self) -> Any:
        from google.auth import credentials as auth_credentials  # noqa: PLC0415
        from google.auth import exceptions as auth_exc  # noqa: PLC0415

        if is_local_endpoint(self.api_endpoint):
            return auth_credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]
        import google.auth  # noqa: PLC0415

        try:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except auth_exc.DefaultCredentialsError as exc:
            raise LaunchFailure(
                f"No Google Cloud credentials found: {exc}",
                category="credentials",
                reason_code="DefaultCredentialsError",
            ) from exc
        return credentials


class _Translate:
    """``with _Translate(zone):`` re-raises API failures as classified :class:`LaunchFailure`."""

    def __init__(self, zone: str):
        self.zone = zone

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, LaunchFailure) and isinstance(exc, _api_errors()):
            raise classify(exc, zone=self.zone) from exc


def _is_done(status: Any) -> bool:
    return bool(getattr(status, "name", status) == "DONE")


def _operation_failed(op: Any) -> bool:
    status = getattr(op, "http_error_status_code", None) or 0
    return bool(_operation_errors(op)) or int(status) >= 400


def _operation_errors(op: Any) -> list[Any]:
    error = getattr(op, "error", None)
    return list(getattr(error, "errors", None) or [])


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
    "is_local_endpoint",
    "to_instance",
]
