"""ComputeApi and the cold launcher against the fake Compute REST server, through the real client."""

from __future__ import annotations

from typing import Any

import pytest

from goldfish.backends.gce.compute import ComputeApi, InstanceInfo
from goldfish.backends.gce.failures import LaunchFailure
from goldfish.backends.gce.instances import InstanceBody, body_from_profile, instance_name
from goldfish.backends.gce.launcher import LaunchError, launch_cold
from goldfish.backends.profiles import BUILT_IN
from tests.fakes.fake_compute import FakeCompute

ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]
LABELS = {"goldfish-project": "proj", "goldfish-pool": "cold"}


def _body(zone: str, *, spot: bool = True, gpu: bool = True, **changes: Any) -> InstanceBody:
    """A GPU (or CPU) body with plain metadata: no startup-script, so the fake boots nothing."""
    values: dict[str, Any] = {
        "name": instance_name(),
        "zone": zone,
        "machine_type": "a2-highgpu-1g" if gpu else "n2-standard-4",
        "accelerator": "nvidia-tesla-a100" if gpu else None,
        "gpu_count": 1 if gpu else 0,
        "spot": spot,
        "boot_disk_gb": 200,
        "image_project": "deeplearning-platform-release",
        "image_family": "common-cu124-debian-11",
        "metadata": {"goldfish-job": '{"stage_run_id": "stage-0123456789ab"}', "note": "plain"},
        "labels": dict(LABELS),
        "service_account": "vm@fake-project.iam.gserviceaccount.com",
    }
    values.update(changes)
    return InstanceBody(**values)


@pytest.fixture
def api(fake_compute: FakeCompute) -> ComputeApi:
    return ComputeApi(fake_compute.project, fake_compute.endpoint, rpc_timeout=10)


def _insert_failure(api: ComputeApi, zone: str, body: InstanceBody | None = None) -> LaunchFailure:
    with pytest.raises(LaunchFailure) as info:
        api.insert(zone, body or _body(zone))
    return info.value


# -- the adapter -----------------------------------------------------------------------------------


def test_insert_then_get_returns_what_was_asked_for(fake_compute: FakeCompute, api: ComputeApi) -> None:
    body = _body("us-central1-a")
    api.insert("us-central1-a", body)

    info = api.get("us-central1-a", body.name)
    assert info is not None
    assert (info.name, info.zone, info.status, info.spot) == (body.name, "us-central1-a", "RUNNING", True)
    assert info.labels == LABELS
    assert info.metadata == body.metadata
    assert info.metadata_fingerprint and info.label_fingerprint
    sent = fake_compute.inserts[-1]["body"]
    assert sent["scheduling"]["provisioningModel"] == "SPOT"
    assert sent["scheduling"]["instanceTerminationAction"] == "STOP"
    assert sent["guestAccelerators"][0]["acceleratorType"].endswith("acceleratorTypes/nvidia-tesla-a100")
    assert sent["networkInterfaces"][0]["accessConfigs"][0]["type"] == "ONE_TO_ONE_NAT"
    assert sent["disks"][0]["initializeParams"]["sourceImage"] == (
        "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
    )


def test_get_of_a_missing_instance_is_none(api: ComputeApi) -> None:
    assert api.get("us-central1-a", "goldfish-nothere") is None


def test_list_filters_by_every_label_on_the_server(api: ComputeApi) -> None:
    cold = _body("us-central1-a", gpu=False, spot=False)
    warm = _body("us-central1-a", gpu=False, spot=False, labels={**LABELS, "goldfish-pool": "warm"})
    elsewhere = _body("us-central1-b", gpu=False, spot=False)
    for body in (cold, warm, elsewhere):
        api.insert(body.zone, body)

    def names(labels: dict[str, str]) -> set[str]:
        return {i.name for i in api.list("us-central1-a", labels)}

    assert names({"goldfish-pool": "cold"}) == {cold.name}
    assert names({"goldfish-project": "proj"}) == {cold.name, warm.name}
    assert names({"goldfish-project": "proj", "goldfish-pool": "warm"}) == {warm.name}
    assert names({"goldfish-project": "other"}) == set()
    assert names({}) == {cold.name, warm.name}


def test_set_metadata_merges_and_removes_keys_with_the_fingerprint(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    body = _body("us-central1-a")
    api.insert("us-central1-a", body)
    before = api.get("us-central1-a", body.name)
    assert before is not None

    api.set_metadata("us-central1-a", body.name, {"goldfish-job": '{"attempt": 2}', "note": None, "new": "x"})

    after = api.get("us-central1-a", body.name)
    assert after is not None
    assert after.metadata == {"goldfish-job": '{"attempt": 2}', "new": "x"}
    assert after.metadata_fingerprint != before.metadata_fingerprint
    assert fake_compute.set_metadata_calls[-1]["fingerprint"] == before.metadata_fingerprint


def test_set_metadata_retries_when_someone_else_changed_the_instance_meanwhile(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    body = _body("us-central1-a")
    api.insert("us-central1-a", body)
    other = ComputeApi(fake_compute.project, fake_compute.endpoint)

    class Racing(ComputeApi):
        raced = False

        def get(self, zone: str, name: str) -> InstanceInfo | None:
            info = super().get(zone, name)
            if not self.raced:  # between our read and our write, another writer wins
                self.raced = True
                other.set_metadata(zone, name, {"other": "1"})
            return info

    racing = Racing(fake_compute.project, fake_compute.endpoint)
    racing.set_metadata("us-central1-a", body.name, {"mine": "2"})

    after = api.get("us-central1-a", body.name)
    assert after is not None
    assert after.metadata["other"] == "1" and after.metadata["mine"] == "2"
    assert [c["ok"] for c in fake_compute.set_metadata_calls] == [True, False, True]


def test_set_labels_merges_with_the_label_fingerprint(fake_compute: FakeCompute, api: ComputeApi) -> None:
    body = _body("us-central1-a")
    api.insert("us-central1-a", body)

    api.set_labels("us-central1-a", body.name, {"goldfish-run": "stage-0123456789ab", "goldfish-pool": None})

    after = api.get("us-central1-a", body.name)
    assert after is not None
    assert after.labels == {"goldfish-project": "proj", "goldfish-run": "stage-0123456789ab"}
    assert fake_compute.set_labels_calls[-1]["ok"] is True


def test_set_metadata_of_a_missing_instance_is_not_found(api: ComputeApi) -> None:
    with pytest.raises(LaunchFailure) as info:
        api.set_metadata("us-central1-a", "goldfish-nothere", {"a": "b"})
    assert info.value.category == "not_found"


def test_delete_removes_the_instance_and_a_second_delete_is_fine(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    body = _body("us-central1-a")
    api.insert("us-central1-a", body)

    api.delete("us-central1-a", body.name)
    api.delete("us-central1-a", body.name)

    assert api.get("us-central1-a", body.name) is None
    assert fake_compute.deletes == [body.name]


# -- faults, as the real client reports them --------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"]
)
def test_a_zone_without_capacity_is_a_capacity_failure_with_gce_code(
    fake_compute: FakeCompute, api: ComputeApi, code: str
) -> None:
    fake_compute.fail_zone("us-central1-a", code)
    failure = _insert_failure(api, "us-central1-a")
    assert (failure.category, failure.reason_code, failure.zone) == ("capacity", code, "us-central1-a")
    assert failure.code == "GCE_CAPACITY"
    assert "does not have enough resources" in failure.message


def test_a_quota_fault_is_a_quota_failure(fake_compute: FakeCompute, api: ComputeApi) -> None:
    fake_compute.fail_zone("us-central1-a", "QUOTA_EXCEEDED")
    failure = _insert_failure(api, "us-central1-a")
    assert (failure.category, failure.reason_code) == ("quota", "QUOTA_EXCEEDED")
    assert "NVIDIA_H100_GPUS" in failure.message


def test_missing_permissions_are_a_credentials_failure_with_a_remedy(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    fake_compute.fail_insert_http("us-central1-a", 403, "insufficientPermissions")
    failure = _insert_failure(api, "us-central1-a")
    assert (failure.category, failure.reason_code) == ("credentials", "insufficientPermissions")
    assert "gcloud auth application-default login" in failure.remedy
    assert isinstance(failure.__cause__, Exception) and type(failure.__cause__).__name__ == "Forbidden"


def test_a_body_gce_refuses_is_an_invalid_request(api: ComputeApi) -> None:
    failure = _insert_failure(api, "us-central1-a", _body("us-central1-a", machine_type="bad/type"))
    assert failure.category == "invalid_request"
    assert "machineType" in failure.message


def test_an_unknown_project_is_an_invalid_request(fake_compute: FakeCompute) -> None:
    api = ComputeApi("no-such-project", fake_compute.endpoint, rpc_timeout=10)
    assert _insert_failure(api, "us-central1-a").category == "invalid_request"


def test_an_endpoint_that_does_not_answer_is_a_network_failure() -> None:
    api = ComputeApi("fake-project", "http://127.0.0.1:9", rpc_timeout=2)
    with pytest.raises(LaunchFailure) as info:
        api.get("us-central1-a", "goldfish-x")
    assert info.value.category == "network"


# -- launch_cold through the real client ------------------------------------------------------------


def _make_body(zone: str, spot: bool) -> InstanceBody:
    return _body(zone, spot=spot)


def test_launch_lands_in_the_second_zone_when_the_first_has_no_capacity(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    fake_compute.fail_zone("us-central1-a", "ZONE_RESOURCE_POOL_EXHAUSTED")

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=False, make_body=_make_body)

    assert (result.zone, result.spot, result.created) == ("us-central1-b", True, True)
    assert [(t.zone, t.category) for t in result.tries] == [
        ("us-central1-a", "capacity"),
        ("us-central1-b", None),
    ]
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in (result.tries[0].error or "")
    assert [(i["zone"], i["ok"]) for i in fake_compute.inserts] == [
        ("us-central1-a", False),
        ("us-central1-b", True),
    ]
    assert fake_compute.instances[result.name].zone == "us-central1-b"


def test_launch_deletes_what_a_failed_insert_left_behind(fake_compute: FakeCompute, api: ComputeApi) -> None:
    fake_compute.fail_zone("us-central1-a", "ZONE_RESOURCE_POOL_EXHAUSTED", partial=True)

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=False, make_body=_make_body)

    failed_name = fake_compute.inserts[0]["name"]
    assert fake_compute.deletes == [failed_name]
    assert set(fake_compute.instances) == {result.name}


def test_launch_falls_back_to_on_demand_when_spot_is_exhausted_everywhere(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    for zone in ZONES:
        fake_compute.fail_zone(zone, "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", provisioning="SPOT")

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=True, make_body=_make_body)

    assert (result.zone, result.spot) == ("us-central1-a", False)
    assert [(i["zone"], i["provisioning_model"]) for i in fake_compute.inserts] == [
        *[(zone, "SPOT") for zone in ZONES],
        ("us-central1-a", "STANDARD"),
    ]
    assert fake_compute.instances[result.name].provisioning_model == "STANDARD"


def test_launch_follows_the_zones_an_error_names_as_having_capacity(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    message = (
        "The zone 'projects/fake-project/zones/us-central1-a' does not have enough resources available to "
        "fulfill the request. Resources are available in zone us-central1-c."
    )
    fake_compute.fail_zone("us-central1-a", "ZONE_RESOURCE_POOL_EXHAUSTED", message=message)

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=False, make_body=_make_body)

    assert [i["zone"] for i in fake_compute.inserts] == ["us-central1-a", "us-central1-c"]
    assert result.zone == "us-central1-c"


def test_launch_stops_at_once_on_missing_permissions(fake_compute: FakeCompute, api: ComputeApi) -> None:
    fake_compute.fail_insert_http("us-central1-a", 403, "insufficientPermissions")

    with pytest.raises(LaunchError) as info:
        launch_cold(api, ZONES, spot=True, on_demand_fallback=True, make_body=_make_body)

    assert info.value.category == "credentials"
    assert [i["zone"] for i in fake_compute.inserts] == ["us-central1-a"]
    assert fake_compute.instances == {}


def test_launch_with_every_zone_out_of_quota_reports_each_zone(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    for zone in ZONES:
        fake_compute.fail_zone(zone, "QUOTA_EXCEEDED")

    with pytest.raises(LaunchError) as info:
        launch_cold(api, ZONES, spot=False, on_demand_fallback=False, make_body=_make_body)

    error = info.value
    assert error.category == "quota"
    assert [t["zone"] for t in error.details["tries"]] == ZONES
    assert all(zone in error.message for zone in ZONES)


# -- what GCE refuses (the simulator's rule table) --------------------------------------------------


def test_insert_when_an_a3_high_1g_asks_for_on_demand_is_refused_as_gce_refuses(api: ComputeApi) -> None:
    body = _body("us-central1-a", spot=False, machine_type="a3-highgpu-1g", accelerator="nvidia-h100-80gb")
    failure = _insert_failure(api, "us-central1-a", body)
    assert (failure.category, failure.zone_scoped) == ("invalid_request", False)
    assert "SPOT" in failure.message


def test_insert_when_an_a3_boot_disk_is_pd_standard_is_refused(api: ComputeApi) -> None:
    body = _body("us-central1-a", machine_type="a3-highgpu-1g", boot_disk_type="pd-standard")
    failure = _insert_failure(api, "us-central1-a", body)
    assert failure.category == "invalid_request"
    assert "pd-standard" in failure.message


@pytest.mark.parametrize(
    "profile", ["h100-spot", "h100-on-demand", "a100-spot", "a100-on-demand", "cpu-large"]
)
def test_built_in_profiles_when_launched_are_accepted_by_gce(
    fake_compute: FakeCompute, api: ComputeApi, profile: str
) -> None:
    shape = BUILT_IN[profile]
    body = body_from_profile(
        shape, zone="us-central1-a", spot=shape.spot, name=instance_name(), metadata={}, labels={},
        service_account="vm@fake-project.iam.gserviceaccount.com",
    )  # fmt: skip
    api.insert("us-central1-a", body)
    assert fake_compute.instances[body.name].status == "RUNNING"


def test_insert_when_the_operation_outlasts_a_read_timeout_waits_until_it_is_done(
    fake_compute: FakeCompute,
) -> None:
    api = ComputeApi(fake_compute.project, fake_compute.endpoint, rpc_timeout=0.5)
    fake_compute.slow_operations(2.0)
    body = _body("us-central1-a")

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=False, make_body=lambda zone, spot: body)

    assert (result.name, result.zone) == (body.name, "us-central1-a")
    assert fake_compute.deletes == []
    assert [i["zone"] for i in fake_compute.inserts] == ["us-central1-a"]


def test_launch_when_the_machine_type_is_not_offered_in_a_zone_tries_the_next(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    fake_compute.withhold_machine_type("us-central1-a", "a2-highgpu-1g")

    result = launch_cold(api, ZONES, spot=True, on_demand_fallback=False, make_body=_make_body)

    assert result.zone == "us-central1-b"
    assert result.tries[0].category == "invalid_request"
    assert "does not exist in zone" in (result.tries[0].error or "")


def test_default_service_account_is_the_projects_compute_account(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    assert api.default_service_account() == fake_compute.default_service_account
    assert api.default_service_account().endswith("-compute@developer.gserviceaccount.com")


def test_image_from_family_when_the_family_was_retired_is_an_invalid_request(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    assert api.image_from_family("debian-cloud", "debian-12").startswith("debian-12")
    fake_compute.retire_image_family("deeplearning-platform-release", "common-cu124-debian-11")
    with pytest.raises(LaunchFailure) as info:
        api.image_from_family("deeplearning-platform-release", "common-cu124-debian-11")
    assert info.value.category == "invalid_request"
    assert _insert_failure(api, "us-central1-a").category == "invalid_request"


def test_a_gpu_vm_from_a_deep_learning_image_has_a_driver_only_when_the_body_asks_for_it(
    fake_compute: FakeCompute, api: ComputeApi
) -> None:
    script = "nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits > gpus.txt 2>&1\npoweroff\n"
    profile = BUILT_IN["a100-spot"]
    names = []
    for asked in (True, False):
        body = body_from_profile(
            profile, zone="us-central1-a", spot=True, name=instance_name(),
            metadata={"startup-script": script}, labels={},
            service_account="vm@fake-project.iam.gserviceaccount.com",
        )  # fmt: skip
        if not asked:
            body.metadata.pop("install-nvidia-driver", None)
        api.insert("us-central1-a", body)
        names.append(body.name)
    outputs = []
    for name in names:
        sandbox = fake_compute.instances[name].sandbox
        assert sandbox is not None
        assert sandbox.wait(30) is not None, sandbox.console()  # the script ran and powered off
        outputs.append((sandbox.directory / "gpus.txt").read_text())
    assert outputs[0].split() == ["81559"]  # one A100 with its driver
    assert "not found" in outputs[1]  # no active driver: no nvidia-smi at all
