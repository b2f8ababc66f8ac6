"""The Compute side of ``goldfish doctor``: the API answers, the account VMs run as, the image families."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from goldfish.backends.gce.compute import ComputeApi
from goldfish.backends.gce.config_check import missing_gce_settings
from goldfish.backends.gce.doctor_checks import (
    INSTALL_FIX,
    RPC_TIMEOUT,
    SETTING_FIXES,
    Check,
    Probe,
    check,
    skipped,
)
from goldfish.backends.gce.failures import LaunchFailure
from goldfish.backends.gce.instances import image_source
from goldfish.backends.profiles import all_profiles
from goldfish.config import GoldfishConfig
from goldfish.errors import ConfigError

# ---------------------------------------------------------------- compute


def _compute_fix(failure: Any, project: str, zone: str) -> str:
    """The fix for a failed listing: the setting or command it points at, else the failure's remedy."""
    text = f"{failure.reason_code} {failure.message}"
    if any(marker in text for marker in ("accessNotConfigured", "SERVICE_DISABLED", "has not been used")):
        return f"Enable the Compute API: `gcloud services enable compute.googleapis.com --project={project}`."
    if "not found" in text and f"zones/{zone}'" in text:
        return f"Check gce.zones in goldfish.yaml: zone {zone} does not exist (`gcloud compute zones list`)."
    if "not found" in text and f"projects/{project}'" in text:
        return (
            f"Check gce.project_id in goldfish.yaml: project {project} was not found "
            "(`gcloud projects list` shows the IDs your account can see)."
        )
    return str(failure.remedy)


def _compute_call(config: GoldfishConfig, project_root: Path | None) -> Callable[[], Check]:
    def call() -> Check:
        from goldfish.backends.container import project_label  # noqa: PLC0415

        project, zone = str(config.gce.project_id), config.gce.zones[0]
        labels = (
            {"goldfish-project": project_label(project_root)} if project_root else {"goldfish-pool": "warm"}
        )
        api = ComputeApi(project, config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        try:
            found = api.list(zone, labels)
        except LaunchFailure as failure:
            return check("compute api", False, failure.message, _compute_fix(failure, project, zone))
        detail = f"project {project}, zone {zone} answered; {len(found)} goldfish instance(s) there"
        return check("compute api", True, detail)

    return call


def compute_probe(config: GoldfishConfig, libraries: set[str], project_root: Path | None) -> Probe | Check:
    """The Compute API check: list this project's instances in the first zone (label filter)."""
    for key in ("gce.project_id", "gce.zones"):
        if key in missing_gce_settings(config):
            return skipped("compute api", f"{key} is not set", SETTING_FIXES[key])
    if "google.cloud.compute_v1" not in libraries:
        return skipped("compute api", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    fix = "Check the connection to the Compute API (and gce.api_endpoint when set)."
    return Probe("compute api", _compute_call(config, project_root), fix)


# ---------------------------------------------------------------- VM service account and images

_ACCOUNT_ROLES = (
    "it needs roles/storage.objectAdmin on the bucket and roles/artifactregistry.reader on the "
    "repository (docs/gce-setup.md, steps 4 and 5)"
)


def _account_call(config: GoldfishConfig) -> Callable[[], Check]:
    def call() -> Check:

        api = ComputeApi(str(config.gce.project_id), config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        try:
            email = api.default_service_account()
        except LaunchFailure as failure:
            if failure.reason_code == "NO_DEFAULT_SERVICE_ACCOUNT":
                return check("vm service account", False, failure.message, failure.remedy)
            detail = (
                f"gce.service_account is not set and the project's default account could not be looked "
                f"up (projects.get: {failure.message}); VMs would run without an account"
            )
            fix = "Set gce.service_account in goldfish.yaml, or let this account read the project."
            return check("vm service account", True, detail, fix, warning=True)
        detail = (
            f"gce.service_account is not set: VMs run as the project's default Compute Engine account "
            f"{email} (cloud-platform scope); {_ACCOUNT_ROLES}"
        )
        return check("vm service account", True, detail)

    return call


def account_probe(config: GoldfishConfig, libraries: set[str]) -> Probe | Check:
    """Which account VMs run as: gce.service_account, else the project's default (``projects.get``).

    A VM without a service account gets no token: it could not read its job from the bucket.
    """
    if config.gce.service_account:
        detail = f"VMs run as {config.gce.service_account} (cloud-platform scope); {_ACCOUNT_ROLES}"
        return check("vm service account", True, detail)
    if "gce.project_id" in missing_gce_settings(config):
        return skipped("vm service account", "gce.project_id is not set", SETTING_FIXES["gce.project_id"])
    if "google.cloud.compute_v1" not in libraries:
        return skipped("vm service account", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    fix = "Set gce.service_account in goldfish.yaml to the account the VMs should run as."
    return Probe("vm service account", _account_call(config), fix)


def _image_sources(config: GoldfishConfig) -> dict[tuple[str, str], list[str]]:
    """``(image project, family)`` → the GCE profiles booting from it."""
    sources: dict[tuple[str, str], list[str]] = {}
    for name, profile in sorted(all_profiles(config).items()):
        if profile.backend != "gce":
            continue
        gpu = bool(profile.accelerator) and profile.gpu_count > 0
        sources.setdefault(image_source(profile.image_family, gpu=gpu), []).append(name)
    return sources


def _images_call(config: GoldfishConfig, sources: dict[tuple[str, str], list[str]]) -> Callable[[], Check]:
    def call() -> Check:

        api = ComputeApi(str(config.gce.project_id), config.gce.api_endpoint, rpc_timeout=RPC_TIMEOUT)
        found, missing = [], []
        for (project, family), profiles in sources.items():
            try:
                found.append(f"{project}/{family} → {api.image_from_family(project, family)}")
            except LaunchFailure as failure:
                if f"images/family/{family}" not in failure.message:  # not GCE saying "no such family"
                    detail = f"could not look up {project}/{family}: {failure.message}"
                    return check("image families", True, detail, failure.remedy, warning=True)
                missing.append((f"{project}/{family}", profiles))
        if missing:
            named = "; ".join(f"{source} (profiles {', '.join(names)})" for source, names in missing)
            first = missing[0][1][0]
            project = missing[0][0].split("/", 1)[0]
            fix = (
                f"Set gce.profile_overrides.{first}.image_family (and the other profiles named) to a "
                f"family that exists: `gcloud compute images list --project={project} "
                "--no-standard-images` lists them (for GPUs, a Deep Learning VM family with CUDA)."
            )
            return check("image families", False, f"no such image family: {named}", fix)
        return check("image families", True, "; ".join(found))

    return call


def images_probe(config: GoldfishConfig, libraries: set[str]) -> Probe | Check:
    """Every GCE profile's image family resolves (``images.getFromFamily``): families get renamed."""
    if "gce.project_id" in missing_gce_settings(config):
        return skipped("image families", "gce.project_id is not set", SETTING_FIXES["gce.project_id"])
    if "google.cloud.compute_v1" not in libraries:
        return skipped("image families", "google.cloud.compute_v1 is not importable", INSTALL_FIX)
    try:
        sources = _image_sources(config)
    except ConfigError as error:
        return check("image families", False, error.message, error.remedy)
    fix = "Check the connection to the Compute API (and gce.api_endpoint when set)."
    return Probe("image families", _images_call(config, sources), fix)
