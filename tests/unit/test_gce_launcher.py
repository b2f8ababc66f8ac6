"""GCE launch logic without a server: error classification, instance bodies, the zone/spot loop."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import requests
from google.api_core import exceptions as _core_exc
from google.auth import exceptions as _auth_exc

from goldfish.backends.gce.adaptor import is_local_endpoint
from goldfish.backends.gce.compute import ComputeApi, InstanceInfo
from goldfish.backends.gce.failures import Category, LaunchFailure, classify
from goldfish.backends.gce.instances import (
    NAME_RE,
    InstanceBody,
    body_from_profile,
    check_provisioning,
    image_source,
    instance_name,
    instance_resource,
    label_value,
    standard_model_offered,
)
from goldfish.backends.gce.launcher import LaunchError, LaunchTry, launch_cold, zone_order
from goldfish.backends.profiles import BUILT_IN
from goldfish.errors import ConfigError

# The exception classes are untyped; reach them through Any so strict mypy accepts the calls.
core_exc: Any = _core_exc
auth_exc: Any = _auth_exc

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


# -- instances: names, labels, images, bodies -------------------------------------------------------


def test_instance_names_are_valid_and_fresh() -> None:
    names = {instance_name() for _ in range(200)}
    assert len(names) == 200
    assert all(NAME_RE.match(n) and n.startswith("goldfish-") for n in names)


@pytest.mark.parametrize("prefix", ["Goldfish Warm", "9lives", "", "x" * 80, "--a--", "ünïcode"])
def test_instance_name_sanitises_any_prefix(prefix: str) -> None:
    name = instance_name(prefix)
    assert NAME_RE.match(name), name
    assert len(name) <= 63


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stage-0123456789ab", "stage-0123456789ab"),
        ("My Project!", "my-project-"),
        ("a/b\\c", "a-b-c"),
        ("UPPER_case-ok", "upper_case-ok"),
        ("", ""),
    ],
)
def test_label_value_sanitises(text: str, expected: str) -> None:
    assert label_value(text) == expected


def test_label_value_keeps_long_values_distinct_within_63_chars() -> None:
    one, two = label_value("p" * 100 + "one"), label_value("p" * 100 + "two")
    assert one != two
    assert len(one) == len(two) == 63
    assert re.fullmatch(r"[a-z0-9_-]{0,63}", one)
    assert label_value(one) == one  # idempotent
    assert label_value("p" * 100 + "one") == one  # deterministic


@pytest.mark.parametrize(
    ("family", "gpu", "expected"),
    [
        ("common-cu124-debian-11", True, ("deeplearning-platform-release", "common-cu124-debian-11")),
        ("pytorch-latest-gpu", True, ("deeplearning-platform-release", "pytorch-latest-gpu")),
        ("debian-12", False, ("debian-cloud", "debian-12")),
        ("ubuntu-2204-lts", False, ("ubuntu-os-cloud", "ubuntu-2204-lts")),
        ("my-project/my-family", False, ("my-project", "my-family")),
        (None, True, ("deeplearning-platform-release", "common-cu124-debian-11")),
        (None, False, ("debian-cloud", "debian-12")),
    ],
)
def test_image_source_resolves_the_publishing_project(
    family: str | None, gpu: bool, expected: tuple[str, str]
) -> None:
    assert image_source(family, gpu=gpu) == expected


@pytest.mark.parametrize("family", ["rocky-linux-9", "a/b/c", "/fam", "proj/"])
def test_image_source_refuses_families_it_cannot_place(family: str) -> None:
    with pytest.raises(ConfigError) as info:
        image_source(family)
    assert "PROJECT/FAMILY" in info.value.remedy


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


def test_spot_gpu_body_renders_every_part_of_the_instance() -> None:
    resource = instance_resource(_body())
    assert resource["machine_type"] == "zones/us-central1-a/machineTypes/a3-highgpu-1g"
    disk = resource["disks"][0]
    assert disk["boot"] and disk["auto_delete"]
    assert disk["initialize_params"] == {
        "source_image": "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11",
        "disk_size_gb": 500,
        "disk_type": "zones/us-central1-a/diskTypes/pd-balanced",
    }
    assert resource["network_interfaces"][0]["access_configs"][0]["type_"] == "ONE_TO_ONE_NAT"
    assert resource["guest_accelerators"] == [
        {"accelerator_type": "zones/us-central1-a/acceleratorTypes/nvidia-h100-80gb", "accelerator_count": 1}
    ]
    assert resource["scheduling"] == {
        "provisioning_model": "SPOT",
        "instance_termination_action": "STOP",
        "on_host_maintenance": "TERMINATE",
        "automatic_restart": False,
    }
    assert resource["service_accounts"][0]["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert resource["metadata"] == {"items": [{"key": "goldfish-job", "value": "{}"}]}
    assert resource["labels"] == {"goldfish-pool": "cold"}


def test_on_demand_cpu_body_has_no_accelerator_and_may_migrate() -> None:
    resource = instance_resource(
        _body(accelerator=None, gpu_count=0, spot=False, machine_type="n2-standard-32", service_account=None)
    )
    assert "guest_accelerators" not in resource
    assert "service_accounts" not in resource
    assert resource["scheduling"] == {
        "provisioning_model": "STANDARD",
        "on_host_maintenance": "MIGRATE",
        "automatic_restart": False,
    }


def test_body_from_profile_takes_the_profile_shape_and_the_try_zone_and_model() -> None:
    body = body_from_profile(
        BUILT_IN["h100-spot"],
        zone="us-east5-a",
        spot=False,
        name="goldfish-1",
        metadata={"k": "v"},
        labels={"goldfish-pool": "cold"},
        service_account=None,
    )
    assert (body.zone, body.spot, body.machine_type, body.accelerator, body.gpu_count) == (
        "us-east5-a",
        False,
        "a3-highgpu-1g",
        "nvidia-h100-80gb",
        1,
    )
    assert (body.image_project, body.image_family) == (
        "deeplearning-platform-release",
        "common-cu124-debian-11",
    )


def test_body_from_profile_when_the_gpu_image_is_a_deep_learning_vm_asks_it_to_install_the_driver() -> None:
    gpu = body_from_profile(
        BUILT_IN["a100-spot"], zone="z", spot=True, name="n", metadata={}, labels={}, service_account=None
    )
    cpu = body_from_profile(
        BUILT_IN["cpu-large"], zone="z", spot=False, name="n", metadata={}, labels={}, service_account=None
    )
    assert gpu.metadata["install-nvidia-driver"] == "True"
    assert "install-nvidia-driver" not in cpu.metadata


@pytest.mark.parametrize(
    ("machine", "disk"),
    [
        ("a3-highgpu-1g", "pd-balanced"),
        ("n2-standard-32", "pd-balanced"),
        ("c4-standard-8", "hyperdisk-balanced"),
    ],
)
def test_body_from_profile_always_names_a_boot_disk_type_the_machine_series_takes(
    machine: str, disk: str
) -> None:
    profile = BUILT_IN["cpu-large"].model_copy(update={"machine_type": machine})
    body = body_from_profile(
        profile, zone="z", spot=False, name="n", metadata={}, labels={}, service_account=None
    )
    assert body.boot_disk_type == disk
    assert (
        instance_resource(body)["disks"][0]["initialize_params"]["disk_type"] == f"zones/z/diskTypes/{disk}"
    )


def test_h100_profiles_when_built_in_only_ask_gce_for_models_it_offers() -> None:
    spot, on_demand = BUILT_IN["h100-spot"], BUILT_IN["h100-on-demand"]
    assert spot.machine_type == "a3-highgpu-1g" and spot.spot and not spot.on_demand_fallback
    assert on_demand.machine_type == "a3-highgpu-8g" and on_demand.gpu_count == 8
    assert standard_model_offered("a3-highgpu-8g") and not standard_model_offered("a3-highgpu-1g")
    check_provisioning(on_demand)
    check_provisioning(spot)


def test_check_provisioning_when_an_on_demand_profile_names_a_spot_only_machine_says_what_to_set() -> None:
    profile = BUILT_IN["h100-spot"].model_copy(update={"name": "mine", "spot": False})
    with pytest.raises(ConfigError) as info:
        check_provisioning(profile)
    assert "only as a Spot" in info.value.message
    assert "gce.profile_overrides.mine.spot: true" in info.value.remedy


def test_body_from_profile_without_machine_type_says_which_setting_is_missing() -> None:
    profile = BUILT_IN["cpu-large"].model_copy(update={"name": "custom", "machine_type": None})
    with pytest.raises(ConfigError) as info:
        body_from_profile(
            profile, zone="z", spot=False, name="n", metadata={}, labels={}, service_account=None
        )
    assert "gce.profile_overrides.custom.machine_type" in info.value.remedy


# -- launch_cold against a dict-backed fake ---------------------------------------------------------


def _fail(category: str, zone: str, *, hints: tuple[str, ...] = (), code: str = "X") -> LaunchFailure:
    kind = cast(Category, category)
    return LaunchFailure(
        f"{category} in {zone}", category=kind, zone=zone, hint_zones=hints, reason_code=code
    )


@dataclass
class FakeApi:
    """Instances in a dict; ``script[(zone, spot)]`` lists the failures the next inserts raise."""

    script: dict[tuple[str, bool], list[LaunchFailure]] = field(default_factory=dict)
    partial: set[str] = field(default_factory=set)  # zones whose failed inserts leave an instance
    instances: dict[tuple[str, str], InstanceInfo] = field(default_factory=dict)
    inserts: list[tuple[str, bool, str]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)

    def insert(self, zone: str, body: InstanceBody, timeout: float = 300) -> None:
        self.inserts.append((zone, body.spot, body.name))
        pending = self.script.get((zone, body.spot), [])
        status = "TERMINATED" if pending else "RUNNING"
        if not pending or zone in self.partial:
            self.instances[(zone, body.name)] = InstanceInfo(
                name=body.name,
                zone=zone,
                status=status,
                labels=dict(body.labels),
                metadata=dict(body.metadata),
                metadata_fingerprint="f",
                label_fingerprint="l",
                spot=body.spot,
            )
        if pending:
            raise pending.pop(0)

    def get(self, zone: str, name: str) -> InstanceInfo | None:
        return self.instances.get((zone, name))

    def delete(self, zone: str, name: str, *, wait: bool = True) -> None:
        self.deletes.append((zone, name))
        self.instances.pop((zone, name), None)

    def fail_always(self, zone: str, spot: bool, category: str, **kwargs: Any) -> None:
        self.script[(zone, spot)] = [_fail(category, zone, **kwargs) for _ in range(20)]

    def tried(self) -> list[tuple[str, bool]]:
        return [(zone, spot) for zone, spot, _name in self.inserts]


ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]


def _launch(api: FakeApi, zones: list[str] = ZONES, **kwargs: Any) -> Any:
    sleeps: list[float] = []
    calls: list[tuple[str, bool]] = []

    def make_body(zone: str, spot: bool) -> InstanceBody:
        calls.append((zone, spot))
        return _body(name=instance_name(), zone=zone, spot=spot)

    options: dict[str, Any] = {"spot": True, "on_demand_fallback": False}
    options.update(kwargs)
    result = launch_cold(api, zones, make_body=make_body, sleep=sleeps.append, **options)
    return result, sleeps, calls


def test_first_zone_at_capacity_lands_in_the_second_and_records_both_tries() -> None:
    api = FakeApi()
    api.fail_always("us-central1-a", True, "capacity", code="ZONE_RESOURCE_POOL_EXHAUSTED")
    result, _sleeps, calls = _launch(api)
    assert api.tried() == [("us-central1-a", True), ("us-central1-b", True)]
    assert calls == api.tried()  # one fresh body per try
    assert (result.zone, result.spot, result.created) == ("us-central1-b", True, True)
    assert [(t.zone, t.category) for t in result.tries] == [
        ("us-central1-a", "capacity"),
        ("us-central1-b", None),
    ]
    assert result.tries[0].error == "capacity in us-central1-a"
    assert (result.zone, result.name) in api.instances
    assert len({name for _z, _s, name in api.inserts}) == 2


def test_quota_also_moves_to_the_next_zone() -> None:
    api = FakeApi()
    api.fail_always("us-central1-a", True, "quota")
    result, _sleeps, _calls = _launch(api)
    assert result.zone == "us-central1-b"


def test_avoided_zones_are_tried_last_not_never() -> None:
    api = FakeApi()
    api.fail_always("us-central1-b", True, "capacity")
    api.fail_always("us-central1-c", True, "capacity")
    result, _sleeps, _calls = _launch(api, avoid_zones=["us-central1-a"])
    assert [z for z, _s in api.tried()] == ["us-central1-b", "us-central1-c", "us-central1-a"]
    assert result.zone == "us-central1-a"


def test_zone_order_drops_duplicates_and_moves_avoided_zones_last() -> None:
    assert zone_order(["a", "b", "a", "c"], ["a", "x"]) == ["b", "c", "a"]


def test_zones_an_error_names_as_having_capacity_are_tried_next() -> None:
    api = FakeApi()
    zones = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    api.fail_always("us-central1-a", True, "capacity", hints=("us-central1-f", "europe-west4-a"))
    result, _sleeps, _calls = _launch(api, zones=zones)
    assert [z for z, _s in api.tried()] == ["us-central1-a", "us-central1-f"]
    assert result.zone == "us-central1-f"


def test_spot_exhausted_everywhere_falls_back_to_on_demand_in_zone_order() -> None:
    api = FakeApi()
    for zone in ZONES:
        api.fail_always(zone, True, "capacity")
    api.fail_always("us-central1-a", False, "capacity")
    result, _sleeps, _calls = _launch(api, on_demand_fallback=True)
    assert api.tried() == [(z, True) for z in ZONES] + [("us-central1-a", False), ("us-central1-b", False)]
    assert (result.zone, result.spot) == ("us-central1-b", False)
    assert [t.category for t in result.tries] == ["capacity"] * 4 + [None]


def test_spot_exhausted_without_fallback_fails_with_every_try_and_a_remedy() -> None:
    api = FakeApi()
    for zone in ZONES:
        api.fail_always(zone, True, "capacity")
    with pytest.raises(LaunchError) as info:
        _launch(api, on_demand_fallback=False)
    error = info.value
    assert error.category == "capacity"
    assert error.code == "GCE_LAUNCH_FAILED"
    assert [t.zone for t in error.tries] == ZONES
    assert all(zone in error.message for zone in ZONES)
    assert "on-demand" in error.remedy
    assert error.to_dict()["details"]["tries"][0]["category"] == "capacity"
    assert all(spot for _z, spot in api.tried())


def test_all_quota_failures_end_as_quota() -> None:
    api = FakeApi()
    for zone in ZONES:
        api.fail_always(zone, False, "quota")
    with pytest.raises(LaunchError) as info:
        _launch(api, spot=False)
    assert info.value.category == "quota"


@pytest.mark.parametrize("category", ["credentials", "invalid_request"])
def test_credentials_and_invalid_requests_stop_at_once_without_fallback(category: str) -> None:
    api = FakeApi()
    api.fail_always("us-central1-a", True, category)
    with pytest.raises(LaunchError) as info:
        _launch(api, on_demand_fallback=True)
    assert api.tried() == [("us-central1-a", True)]
    assert info.value.category == category
    assert [t.category for t in info.value.tries] == [category]
    assert info.value.remedy == _fail(category, "z").remedy


def test_network_errors_retry_the_same_zone_with_backoff() -> None:
    api = FakeApi()
    api.script[("us-central1-a", True)] = [
        _fail("network", "us-central1-a"),
        _fail("network", "us-central1-a"),
    ]
    result, sleeps, _calls = _launch(api)
    assert api.tried() == [("us-central1-a", True)] * 3
    assert sleeps == [1.0, 2.0]
    assert result.zone == "us-central1-a"
    assert [t.category for t in result.tries] == ["network", "network", None]


def test_network_errors_past_the_retries_move_to_the_next_zone() -> None:
    api = FakeApi()
    api.fail_always("us-central1-a", True, "network")
    result, sleeps, _calls = _launch(api, network_retries=2)
    assert [z for z, _s in api.tried()] == ["us-central1-a"] * 3 + ["us-central1-b"]
    assert sleeps == [1.0, 2.0]
    assert result.zone == "us-central1-b"


def test_network_error_when_the_instance_came_up_anyway_keeps_it_instead_of_inserting_again() -> None:
    api = FakeApi()
    api.script[("us-central1-a", True)] = [_fail("network", "us-central1-a", code="OPERATION_TIMEOUT")]

    def booting(zone: str, body: InstanceBody, timeout: float = 300) -> None:
        api.inserts.append((zone, body.spot, body.name))
        api.instances[(zone, body.name)] = InstanceInfo(body.name, zone, "STAGING", {}, {}, "f", "l", True)
        raise api.script[(zone, body.spot)].pop(0)

    api.insert = booting  # type: ignore[method-assign]
    result, sleeps, _calls = _launch(api)

    assert (result.zone, result.created) == ("us-central1-a", True)
    assert len(api.inserts) == 1 and api.deletes == [] and sleeps == []
    assert (result.zone, result.name) in api.instances


def test_classify_when_gce_says_the_machine_type_is_not_in_the_zone_marks_it_zone_scoped() -> None:
    not_here = (
        "Invalid value for field 'resource.machineType': 'zones/us-east1-b/machineTypes/a3-highgpu-1g'. "
        "Machine type with name 'a3-highgpu-1g' does not exist in zone 'us-east1-b'."
    )
    nowhere = (
        "Invalid value for field 'diskType': 'pd-standard'. Disk type pd-standard is not supported by a3."
    )
    zonal, everywhere = classify(_bad_request(not_here)), classify(_bad_request(nowhere))
    assert (zonal.category, zonal.zone_scoped) == ("invalid_request", True)
    assert (everywhere.category, everywhere.zone_scoped) == ("invalid_request", False)


def _bad_request(message: str) -> Exception:
    from google.api_core import exceptions as core_exc

    return core_exc.BadRequest(message)  # type: ignore[no-untyped-call]


def test_an_instance_left_by_a_failed_insert_is_deleted_before_the_next_try() -> None:
    api = FakeApi(partial={"us-central1-a"})
    api.fail_always("us-central1-a", True, "capacity")
    result, _sleeps, _calls = _launch(api)
    failed_name = api.inserts[0][2]
    assert api.deletes == [("us-central1-a", failed_name)]
    assert list(api.instances) == [(result.zone, result.name)]


def test_a_failed_insert_that_left_nothing_deletes_nothing() -> None:
    api = FakeApi()
    api.fail_always("us-central1-a", True, "capacity")
    _launch(api)
    assert api.deletes == []


def test_a_leftover_that_cannot_be_deleted_does_not_stop_the_launch() -> None:
    class StubbornApi(FakeApi):
        def delete(self, zone: str, name: str, *, wait: bool = True) -> None:
            raise _fail("network", zone)

    api = StubbornApi(partial={"us-central1-a"})
    api.fail_always("us-central1-a", True, "capacity")
    result, _sleeps, _calls = _launch(api)
    assert result.zone == "us-central1-b"


def test_no_zones_is_a_launch_error_that_says_where_to_list_them() -> None:
    with pytest.raises(LaunchError) as info:
        _launch(FakeApi(), zones=[])
    assert "gce.zones" in info.value.remedy


def test_launch_tries_serialise_as_plain_dicts() -> None:
    error = LaunchError(
        "m",
        tries=[LaunchTry(zone="z", spot=True, category="capacity", error="e", at="2024-01-01T00:00:00.000Z")],
        category="capacity",
        remedy="r",
    )
    assert json.loads(json.dumps(error.to_dict()))["details"]["tries"][0]["zone"] == "z"


def test_missing_application_default_credentials_is_a_credentials_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(LaunchFailure) as info:
        ComputeApi("some-project").get("us-central1-a", "goldfish-x")
    assert (info.value.category, info.value.code) == ("credentials", "GCE_CREDENTIALS")
    assert "gcloud auth application-default login" in info.value.remedy
