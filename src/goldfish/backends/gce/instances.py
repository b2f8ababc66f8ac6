"""What a GCE instance is made of: the body of one insert, its name and its labels.

Plain Python only: no Google client is imported here. :func:`instance_resource` renders a body
as the mapping ``compute_v1.Instance(...)`` accepts (proto-plus field names), and
``compute.py`` alone turns that into a client object.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from goldfish.backends.profiles import Profile
from goldfish.errors import ConfigError

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_MAX = 63
_NAME_SUFFIX_HEX = 8  # 32 random bits: a collision among live instances of one project is negligible
CPU_IMAGE_FAMILY = "debian-12"
GPU_IMAGE_FAMILY = "common-cu124-debian-11"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DLVM_PROJECT = "deeplearning-platform-release"
DRIVER_METADATA_KEY = "install-nvidia-driver"

# Machine types GCE creates only as Spot or Flex-start VMs, never with the standard model
# (Compute Engine docs, "Accelerator-optimized machine family", A3 High: a3-highgpu-1g, -2g and
# -4g are available only with Spot or Flex-start; a3-highgpu-8g takes every model).
SPOT_OR_FLEX_ONLY = ("a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g")
# Machine series whose boot disk must be Hyperdisk (their pages list no Persistent Disk type).
_HYPERDISK_ONLY_PREFIXES = ("c4-", "c4a-", "c4d-", "n4-", "a3-ultragpu-", "a4-", "a4x-", "x4-")

# Public image families and the projects that publish them (see :func:`image_source`).
_FAMILY_PROJECTS = (
    ("common-", "deeplearning-platform-release"),
    ("pytorch-", "deeplearning-platform-release"),
    ("debian-", "debian-cloud"),
    ("ubuntu-", "ubuntu-os-cloud"),
)


@dataclass(frozen=True)
class InstanceBody:
    """Everything one ``instances.insert`` sends.

    ``metadata`` holds plain string items (``startup-script``, ``goldfish-job``, ...); ``labels``
    must already be valid label values (see :func:`label_value`).
    """

    name: str
    zone: str
    machine_type: str
    accelerator: str | None
    gpu_count: int
    spot: bool
    boot_disk_gb: int
    image_project: str
    image_family: str
    metadata: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str | None = None
    boot_disk_type: str = "pd-balanced"


def body_from_profile(
    profile: Profile,
    *,
    zone: str,
    spot: bool,
    name: str,
    metadata: dict[str, str],
    labels: dict[str, str],
    service_account: str | None,
) -> InstanceBody:
    """The body that launches ``profile`` in ``zone`` (spot or on-demand, as the try asks)."""
    if not profile.machine_type:
        raise ConfigError(
            f"Profile '{profile.name}' has no machine_type.",
            details={"profile": profile.name},
            remedy=f"Set gce.profile_overrides.{profile.name}.machine_type in goldfish.yaml "
            "(e.g. n2-standard-8).",
        )
    gpu = bool(profile.accelerator) and profile.gpu_count > 0
    image_project, family = image_source(profile.image_family, gpu=gpu)
    metadata = dict(metadata)
    if gpu and image_project == DLVM_PROJECT:
        # Deep Learning VM images install the NVIDIA driver at first boot only when asked to.
        metadata[DRIVER_METADATA_KEY] = "True"
    return InstanceBody(
        name=name,
        zone=zone,
        machine_type=profile.machine_type,
        accelerator=profile.accelerator if gpu else None,
        gpu_count=profile.gpu_count if gpu else 0,
        spot=spot,
        boot_disk_gb=profile.boot_disk_gb,
        image_project=image_project,
        image_family=family,
        metadata=metadata,
        labels=dict(labels),
        service_account=service_account,
        boot_disk_type=profile.boot_disk_type or boot_disk_type(profile.machine_type),
    )


def standard_model_offered(machine_type: str) -> bool:
    """Whether GCE creates ``machine_type`` with the standard (on-demand) provisioning model."""
    return machine_type not in SPOT_OR_FLEX_ONLY


def boot_disk_type(machine_type: str) -> str:
    """The boot disk type for ``machine_type``: ``pd-balanced``, or Hyperdisk where PD is not offered.

    Never left to the API: its default, ``pd-standard``, is refused by A3 and newer series.
    """
    if machine_type.startswith(_HYPERDISK_ONLY_PREFIXES):
        return "hyperdisk-balanced"
    return "pd-balanced"


def check_provisioning(profile: Profile) -> None:
    """Refuse a profile asking for an on-demand VM of a machine type GCE offers only as Spot.

    Raises:
        ConfigError: naming the setting to change.
    """
    machine = profile.machine_type
    if machine and not profile.spot and not standard_model_offered(machine):
        raise ConfigError(
            f"Profile '{profile.name}' asks for an on-demand {machine}, which Compute Engine offers "
            "only as a Spot (or Flex-start) VM.",
            details={"profile": profile.name, "machine_type": machine},
            remedy=f"Set gce.profile_overrides.{profile.name}.spot: true, or use a machine type with an "
            "on-demand model (e.g. a3-highgpu-8g for H100s).",
        )


def image_source(image_family: str | None, *, gpu: bool = False) -> tuple[str, str]:
    """Return ``(image_project, family)`` for a profile's ``image_family``.

    The rule:

    * ``None`` picks the default family: ``common-cu124-debian-11`` (Deep Learning VM image, GPU
      driver included) for GPU profiles, ``debian-12`` otherwise.
    * ``PROJECT/FAMILY`` names the project explicitly (any custom or public image).
    * A bare family is looked up by prefix: ``common-*`` and ``pytorch-*`` →
      ``deeplearning-platform-release``; ``debian-*`` → ``debian-cloud``; ``ubuntu-*`` →
      ``ubuntu-os-cloud``.
    * Any other bare family is refused with a :class:`ConfigError` asking for ``PROJECT/FAMILY``.
    """
    if image_family is None:
        image_family = GPU_IMAGE_FAMILY if gpu else CPU_IMAGE_FAMILY
    text = image_family.strip()
    if "/" in text:
        project, _, family = text.partition("/")
        if project and family and "/" not in family:
            return project, family
        raise _image_error(image_family)
    for prefix, project in _FAMILY_PROJECTS:
        if text.startswith(prefix):
            return project, text
    raise _image_error(image_family)


def _image_error(image_family: str) -> ConfigError:
    known = ", ".join(f"{prefix}*" for prefix, _ in _FAMILY_PROJECTS)
    return ConfigError(
        f"Image family '{image_family}' does not say which project publishes it.",
        details={"image_family": image_family, "known_prefixes": [p for p, _ in _FAMILY_PROJECTS]},
        remedy=f"Write the profile's image_family as PROJECT/FAMILY, or use a family starting with {known}.",
    )


def instance_name(prefix: str = "goldfish") -> str:
    """A fresh instance name: ``<prefix>-<8 random hex>``, valid under GCE's naming rule.

    The prefix is sanitised like a label value, forced to start with a letter and shortened so
    the whole name stays within 63 characters.
    """
    suffix = secrets.token_hex(_NAME_SUFFIX_HEX // 2)
    stem = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")
    if not stem or not stem[0].isalpha():
        stem = f"g-{stem}".rstrip("-")
    stem = stem[: LABEL_MAX - len(suffix) - 1].rstrip("-")
    name = f"{stem}-{suffix}"
    if not NAME_RE.match(name):  # pragma: no cover - the steps above make this impossible
        raise ValueError(f"instance name {name!r} breaks the GCE naming rule")
    return name


def label_value(text: str) -> str:
    """Sanitise ``text`` into a GCE label value, deterministically.

    Lowercase; every run of characters outside ``[a-z0-9_-]`` becomes one ``-``; at most 63
    characters. A longer value keeps its first 54 characters plus ``-`` and 8 hex digits of its
    SHA-256, so two long values differing only at the end stay distinct. Applying it twice
    changes nothing.
    """
    value = re.sub(r"[^a-z0-9_-]+", "-", text.lower())
    if len(value) <= LABEL_MAX:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    return f"{value[: LABEL_MAX - 9]}-{digest}"


def instance_resource(body: InstanceBody) -> dict[str, Any]:
    """Render ``body`` as the mapping ``compute_v1.Instance`` takes (proto-plus field names).

    Scheduling: a spot body uses ``provisioning_model=SPOT`` with ``instance_termination_action
    =STOP``. STOP rather than DELETE keeps one ending for every instance — it stays, TERMINATED,
    until the server that owns it deletes it (as after a cold VM's own ``poweroff``) — so a
    preemption is visible as an instance state instead of a vanished instance, and nothing but the
    server ever deletes. GPU and spot bodies set ``on_host_maintenance=TERMINATE`` (GCE requires it);
    ``automatic_restart`` is off so a job never silently restarts on a fresh host.
    """
    zone = body.zone
    resource: dict[str, Any] = {
        "name": body.name,
        "machine_type": f"zones/{zone}/machineTypes/{body.machine_type}",
        "disks": [
            {
                "boot": True,
                "auto_delete": True,
                "initialize_params": {
                    "source_image": f"projects/{body.image_project}/global/images/family/{body.image_family}",
                    "disk_size_gb": body.boot_disk_gb,
                    "disk_type": f"zones/{zone}/diskTypes/{body.boot_disk_type}",
                },
            }
        ],
        "network_interfaces": [
            {
                "network": "global/networks/default",
                "access_configs": [{"name": "External NAT", "type_": "ONE_TO_ONE_NAT"}],
            }
        ],
        "scheduling": _scheduling(body),
        "metadata": {"items": [{"key": k, "value": v} for k, v in body.metadata.items()]},
        "labels": dict(body.labels),
    }
    if body.accelerator and body.gpu_count > 0:
        resource["guest_accelerators"] = [
            {
                "accelerator_type": f"zones/{zone}/acceleratorTypes/{body.accelerator}",
                "accelerator_count": body.gpu_count,
            }
        ]
    if body.service_account:
        resource["service_accounts"] = [{"email": body.service_account, "scopes": [CLOUD_PLATFORM_SCOPE]}]
    return resource


def _scheduling(body: InstanceBody) -> dict[str, Any]:
    gpu = bool(body.accelerator) and body.gpu_count > 0
    scheduling: dict[str, Any] = {
        "automatic_restart": False,
        "on_host_maintenance": "TERMINATE" if gpu or body.spot else "MIGRATE",
        "provisioning_model": "SPOT" if body.spot else "STANDARD",
    }
    if body.spot:
        scheduling["instance_termination_action"] = "STOP"
    return scheduling
