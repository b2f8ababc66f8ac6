"""GCE launch failures without a server: client exceptions and operation errors classified."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from goldfish.backends.gce.adaptor import is_local_endpoint
from goldfish.backends.gce.failures import LaunchFailure, classify
from tests.unit.gce_launch_support import auth_exc, core_exc

# -- classify: exceptions as the REST client raises them -------------------------------------------


def _op(code: str, message: str, status: int = 503, details: list[Any] | None = None) -> SimpleNamespace:
    """A finished insert operation carrying one error, shaped like compute_v1.Operation."""
    entry = SimpleNamespace(code=code, message=message, error_details=details or [])
    return SimpleNamespace(
        status="DONE",
        error=SimpleNamespace(errors=[entry]),
        http_error_status_code=status,
        http_error_message="SERVICE UNAVAILABLE" if status == 503 else "FORBIDDEN",
    )


EXHAUSTED = (
    "The zone 'projects/p/zones/us-central1-a' does not have enough resources available "
    "to fulfill the request."
)


@pytest.mark.parametrize(
    ("exc", "category", "reason"),
    [
        (
            core_exc.Forbidden("denied", errors=[{"reason": "insufficientPermissions"}]),
            "credentials",
            "insufficientPermissions",
        ),
        (
            core_exc.Forbidden("Quota 'GPUS_ALL_REGIONS' exceeded.", errors=[{"reason": "quotaExceeded"}]),
            "quota",
            "quotaExceeded",
        ),
        (
            core_exc.Forbidden(
                "FORBIDDEN", errors=[SimpleNamespace(code="QUOTA_EXCEEDED", message="Quota 'X' exceeded.")]
            ),
            "quota",
            "QUOTA_EXCEEDED",
        ),
        (core_exc.Unauthorized("Login Required", errors=[{"reason": "required"}]), "credentials", "required"),
        (
            core_exc.BadRequest(
                "Invalid value for field 'resource.machineType'", errors=[{"reason": "invalid"}]
            ),
            "invalid_request",
            "invalid",
        ),
        (core_exc.InvalidArgument("bad accelerator"), "invalid_request", "HTTP_400"),
        (
            core_exc.NotFound("The resource 'projects/debian-cloud/global/images/family/nope' was not found"),
            "invalid_request",
            "HTTP_404",
        ),
        (
            core_exc.NotFound("The resource 'projects/p/zones/z/instances/x' was not found"),
            "not_found",
            "HTTP_404",
        ),
        (
            core_exc.ServiceUnavailable(
                "SERVICE UNAVAILABLE",
                errors=[SimpleNamespace(code="ZONE_RESOURCE_POOL_EXHAUSTED", message=EXHAUSTED)],
            ),
            "capacity",
            "ZONE_RESOURCE_POOL_EXHAUSTED",
        ),
        (core_exc.ServiceUnavailable(EXHAUSTED), "capacity", "HTTP_503"),
        (
            core_exc.TooManyRequests(
                "slow down", errors=[{"reason": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}]
            ),
            "capacity",
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        ),
        (
            core_exc.TooManyRequests("Rate Limit Exceeded", errors=[{"reason": "rateLimitExceeded"}]),
            "network",
            "rateLimitExceeded",
        ),
        (core_exc.ServiceUnavailable("backend unavailable"), "network", "HTTP_503"),
        (
            core_exc.InternalServerError("oops", errors=[{"reason": "backendError"}]),
            "network",
            "backendError",
        ),
        (
            core_exc.PreconditionFailed("fingerprint", errors=[{"reason": "conditionNotMet"}]),
            "conflict",
            "conditionNotMet",
        ),
        (core_exc.Conflict("exists", errors=[{"reason": "alreadyExists"}]), "conflict", "alreadyExists"),
        (core_exc.RetryError("deadline", cause=None), "network", "RetryError"),
        (requests.ConnectionError("refused"), "network", "ConnectionError"),
        (requests.ReadTimeout("slow"), "network", "ReadTimeout"),
        (TimeoutError("slow"), "network", "TimeoutError"),
        (auth_exc.DefaultCredentialsError("no ADC"), "credentials", "DefaultCredentialsError"),
        (auth_exc.RefreshError("invalid_grant"), "credentials", "RefreshError"),
        (auth_exc.TransportError("dns"), "network", "TransportError"),
        (ValueError("what"), "unknown", "ValueError"),
    ],
)
def test_classify_maps_each_client_exception_to_its_category(
    exc: BaseException, category: str, reason: str
) -> None:
    failure = classify(exc, zone="us-central1-a")
    assert failure.category == category
    assert failure.reason_code == reason
    assert failure.zone == "us-central1-a"
    assert failure.code == f"GCE_{category.upper()}"
    assert failure.remedy


@pytest.mark.parametrize(
    ("code", "status", "category"),
    [
        ("ZONE_RESOURCE_POOL_EXHAUSTED", 503, "capacity"),
        ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", 503, "capacity"),
        ("QUOTA_EXCEEDED", 403, "quota"),
        ("UNSUPPORTED_OPERATION", 400, "invalid_request"),
        ("RESOURCE_NOT_FOUND", 404, "invalid_request"),
        ("RESOURCE_ALREADY_EXISTS", 409, "conflict"),
        ("PERMISSIONS_ERROR", 403, "credentials"),
        ("SOMETHING_NEW", 500, "network"),
    ],
)
def test_classify_reads_the_operation_error_codes_not_the_http_text(
    code: str, status: int, category: str
) -> None:
    failure = classify(_op(code, f"{code} happened in projects/p/zones/us-central1-a", status))
    assert failure.category == category
    assert failure.reason_code == code


def test_classify_finds_the_operation_behind_an_exception_without_errors() -> None:
    op = _op("ZONE_RESOURCE_POOL_EXHAUSTED", EXHAUSTED)
    exc = core_exc.ServiceUnavailable("SERVICE UNAVAILABLE", response=op)
    failure = classify(exc)
    assert (failure.category, failure.reason_code, failure.zone) == (
        "capacity",
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "us-central1-a",
    )


def test_classify_sees_quota_info_in_error_details() -> None:
    details = [{"quotaInfo": {"metricName": "compute.googleapis.com/gpus"}}]
    op = _op("SOME_LIMIT", "limit reached", status=403, details=details)
    assert classify(op).category == "quota"


def test_classify_names_the_zones_an_error_says_have_capacity_but_not_the_failed_one() -> None:
    message = f"{EXHAUSTED} The resources are available in us-central1-c and europe-west4-b."
    failure = classify(_op("ZONE_RESOURCE_POOL_EXHAUSTED", message))
    assert failure.zone == "us-central1-a"
    assert failure.hint_zones == ["us-central1-c", "europe-west4-b"]


def test_classify_reads_zone_hints_from_structured_error_info() -> None:
    details = [
        SimpleNamespace(
            error_info=SimpleNamespace(metadatas={"zones": "us-east1-b,us-east1-c"}), quota_info=None
        )
    ]
    failure = classify(_op("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", EXHAUSTED, details=details))
    assert failure.hint_zones == ["us-east1-b", "us-east1-c"]


def test_classify_returns_a_launch_failure_unchanged() -> None:
    failure = LaunchFailure("x", category="quota")
    assert classify(failure) is failure


def test_credentials_failure_tells_how_to_authenticate() -> None:
    failure = classify(core_exc.Forbidden("denied", errors=[{"reason": "forbidden"}]))
    assert "gcloud auth application-default login" in failure.remedy
    assert failure.to_dict()["details"]["category"] == "credentials"


def test_invalid_request_failure_names_the_settings_to_check() -> None:
    remedy = classify(core_exc.BadRequest("bad")).remedy
    for setting in ("machine_type", "accelerator", "image_family", "gce.zones"):
        assert setting in remedy


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        (None, False),
        ("https://compute.googleapis.com", False),
        ("http://10.0.0.5:8080", True),
        ("127.0.0.1:8123", True),
        ("https://localhost:9000", True),
        ("[::1]:8123", True),
    ],
)
def test_local_endpoints_are_recognised(endpoint: str | None, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local


def test_importing_the_gce_modules_loads_no_google_library() -> None:
    code = (
        "import sys, json\n"
        "import goldfish.backends.gce.compute, goldfish.backends.gce.launcher\n"
        "import goldfish.backends.gce.instances\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'google' or m.startswith('google.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
