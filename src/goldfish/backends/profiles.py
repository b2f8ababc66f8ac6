"""Resource profiles: built-in machine shapes plus overrides and custom ones from goldfish.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from goldfish.errors import InvalidArgumentError, suggestion_suffix

if TYPE_CHECKING:
    from goldfish.config import GoldfishConfig


class Profile(BaseModel):
    """Where a stage runs and on what."""

    name: str
    backend: str
    machine_type: str | None
    accelerator: str | None
    gpu_count: int
    spot: bool
    on_demand_fallback: bool
    zones: list[str]
    boot_disk_gb: int
    image_family: str | None
    boot_disk_type: str | None = None  # None: chosen per machine series (gce/instances.py)
    container_memory: str | None = None  # None: a VM's container may use the whole machine
    container_cpus: float | None = None


_GPU_IMAGE = "common-cu124-debian-11"
BUILT_IN: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="cpu-small",
            backend="local",
            machine_type="e2-standard-4",
            accelerator=None,
            gpu_count=0,
            spot=False,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=50,
            image_family=None,
        ),
        Profile(
            name="cpu-large",
            backend="gce",
            machine_type="n2-standard-32",
            accelerator=None,
            gpu_count=0,
            spot=False,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=200,
            image_family="debian-12",
        ),
        Profile(
            name="h100-spot",
            backend="gce",
            machine_type="a3-highgpu-1g",  # offered only as Spot or Flex-start: no on-demand fallback
            accelerator="nvidia-h100-80gb",
            gpu_count=1,
            spot=True,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=500,
            image_family=_GPU_IMAGE,
        ),
        Profile(
            name="h100-on-demand",
            backend="gce",
            machine_type="a3-highgpu-8g",  # the only A3 High shape GCE creates on demand
            accelerator="nvidia-h100-80gb",
            gpu_count=8,
            spot=False,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=500,
            image_family=_GPU_IMAGE,
        ),
        Profile(
            name="a100-spot",
            backend="gce",
            machine_type="a2-highgpu-1g",
            accelerator="nvidia-tesla-a100",
            gpu_count=1,
            spot=True,
            on_demand_fallback=True,
            zones=[],
            boot_disk_gb=300,
            image_family=_GPU_IMAGE,
        ),
        Profile(
            name="a100-on-demand",
            backend="gce",
            machine_type="a2-highgpu-1g",
            accelerator="nvidia-tesla-a100",
            gpu_count=1,
            spot=False,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=300,
            image_family=_GPU_IMAGE,
        ),
    )
}


def all_profiles(config: GoldfishConfig) -> dict[str, Profile]:
    """Built-in profiles with goldfish.yaml overrides applied, plus custom profiles."""
    profiles = dict(BUILT_IN)
    for name, override in config.gce.profile_overrides.items():
        base = profiles.get(name) or Profile(
            name=name,
            backend="gce",
            machine_type=None,
            accelerator=None,
            gpu_count=0,
            spot=False,
            on_demand_fallback=False,
            zones=[],
            boot_disk_gb=100,
            image_family=None,
        )
        changes = override.model_dump(exclude_none=True)
        profiles[name] = base.model_copy(update=changes)
    for name, profile in profiles.items():
        if not profile.zones and config.gce.zones:
            profiles[name] = profile.model_copy(update={"zones": list(config.gce.zones)})
    return profiles


def get_profile(config: GoldfishConfig, name: str) -> Profile:
    """One profile by name, with a did-you-mean when unknown."""
    profiles = all_profiles(config)
    if name not in profiles:
        raise InvalidArgumentError(
            f"Unknown profile '{name}'{suggestion_suffix(name, profiles)}.",
            details={"profile": name, "profiles": sorted(profiles)},
            remedy="Call list_profiles to see them.",
        )
    return profiles[name]
