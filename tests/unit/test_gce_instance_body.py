"""GCE instances without a server: names, labels, image sources and the insert body from a profile."""

from __future__ import annotations

import re

import pytest

from goldfish.backends.gce.instances import (
    NAME_RE,
    body_from_profile,
    check_provisioning,
    image_source,
    instance_name,
    instance_resource,
    label_value,
    standard_model_offered,
)
from goldfish.backends.profiles import BUILT_IN
from goldfish.errors import ConfigError
from tests.unit.gce_launch_support import _body

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
