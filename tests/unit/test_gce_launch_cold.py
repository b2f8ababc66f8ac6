"""GCE ``launch_cold`` against a dict-backed fake: the zone order, spot fallback and retries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from goldfish.backends.gce.compute import ComputeApi, InstanceInfo
from goldfish.backends.gce.failures import Category, LaunchFailure, classify
from goldfish.backends.gce.instances import InstanceBody, instance_name
from goldfish.backends.gce.launcher import LaunchError, LaunchTry, launch_cold, zone_order
from tests.unit.gce_launch_support import _body

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
