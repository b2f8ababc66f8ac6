"""What goldfish.yaml must hold before a stage can run on GCE (shared by the backend and doctor)."""

from __future__ import annotations

from goldfish.config import GoldfishConfig
from goldfish.errors import GoldfishError


class GceNotConfiguredError(GoldfishError):
    """goldfish.yaml lacks what the gce backend needs."""

    code = "GCE_NOT_CONFIGURED"
    default_remedy = "Set the keys in details.missing in goldfish.yaml (`goldfish doctor` checks them)."


def missing_gce_settings(config: GoldfishConfig) -> list[str]:
    """The goldfish.yaml keys the gce backend needs and does not have, in the order to fix them."""
    missing = []
    if not config.gce.project_id:
        missing.append("gce.project_id")
    if not config.gce.zones:
        missing.append("gce.zones")
    if not config.gce.image_registry:
        missing.append("gce.image_registry")
    if config.storage.backend != "gcs":
        missing.append("storage.backend: gcs")
    if config.storage.gcs is None:
        missing.append("storage.gcs.bucket")
    return missing
