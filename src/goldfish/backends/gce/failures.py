"""Why a Compute API call failed: :class:`LaunchFailure` and :func:`classify`.

Every API error leaves the Compute adapter as a ``LaunchFailure`` with a ``category`` the
launcher acts on (``capacity``/``quota`` fall over to the next zone, ``credentials`` and
``invalid_request`` stop at once, ``network`` retries). ``google.api_core`` comes from
``adaptor.py`` inside :func:`classify` only, so importing this module stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from goldfish.backends.gce import adaptor
from goldfish.errors import GoldfishError

Category = Literal[
    "capacity", "quota", "credentials", "invalid_request", "network", "not_found", "conflict", "unknown"
]
FALL_OVER: frozenset[str] = frozenset({"capacity", "quota"})
FATAL: frozenset[str] = frozenset({"credentials", "invalid_request"})

_ZONE_RE = re.compile(r"\b([a-z]+(?:-[a-z]+)+[0-9]+-[a-z])\b")
_FAILED_ZONE_RE = re.compile(r"zones/([a-z]+(?:-[a-z]+)+[0-9]+-[a-z])'? does not have")

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


class LaunchFailure(GoldfishError):
    """A Compute API call failed; ``category`` says what kind of failure it is.

    Its ``code`` is its category's, ``GCE_<CATEGORY>`` (``GCE_CAPACITY``, ...); ``GCE_LAUNCH_FAILED``
    is :class:`goldfish.backends.gce.launcher.LaunchError`'s, raised when no zone gave an instance.

    Attributes:
        category: ``capacity``, ``quota``, ``credentials``, ``invalid_request``, ``network``,
            ``not_found``, ``conflict`` or ``unknown``.
        zone: The zone the call was about, when known.
        hint_zones: Zones the error message names as having capacity (never the failed zone).
        reason_code: GCE's own code, e.g. ``ZONE_RESOURCE_POOL_EXHAUSTED``, ``QUOTA_EXCEEDED``,
            ``insufficientPermissions``, or ``HTTP_<status>`` / the exception type without one.
        zone_scoped: An invalid request that only this zone refuses (its machine, accelerator or
            disk type is not offered there): another zone may accept the same body.
    """

    instance_codes = tuple(f"GCE_{category.upper()}" for category in get_args(Category))

    def __init__(
        self,
        message: str,
        *,
        category: Category,
        zone: str | None = None,
        hint_zones: Iterable[str] = (),
        reason_code: str = "",
        remedy: str | None = None,
        zone_scoped: bool = False,
    ):
        self.category: Category = category
        self.zone_scoped = zone_scoped
        self.zone = zone
        self.hint_zones = list(hint_zones)
        self.reason_code = reason_code
        details = {
            "category": category,
            "zone": zone,
            "reason_code": reason_code,
            "hint_zones": self.hint_zones,
            "zone_scoped": zone_scoped,
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
        zone_scoped=category == "invalid_request" and _names_missing_zonal_resource(text),
    )


_ZONAL_MISSING_RE = re.compile(
    r"(does not exist|not found|is not available|not supported) in zone"
    r"|zones/[a-z0-9-]+/(machineTypes|acceleratorTypes)/[^' ]+' was not found",
    re.IGNORECASE,
)


def _names_missing_zonal_resource(text: str) -> bool:
    """Whether GCE's message says a machine/accelerator type is not offered in the request's zone."""
    return _ZONAL_MISSING_RE.search(text) is not None


def _facts(obj: object) -> _Facts:
    if _is_operation(obj):
        return _operation_facts(obj)
    if isinstance(obj, adaptor.api_exceptions().GoogleAPICallError):
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
        entries = operation_errors(response)
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


def operation_errors(op: Any) -> list[Any]:
    """The ``error.errors`` entries of an operation (or an HTTP response shaped like one)."""
    error = getattr(op, "error", None)
    return list(getattr(error, "errors", None) or [])
