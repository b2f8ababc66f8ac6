"""GceBackend's look-ups before a cold launch: the image family and the VM's service account.

The Compute adapter is the outer boundary here: a stand-in answering as GCE does, or as an
endpoint that serves only the contract's calls (no images.getFromFamily, no projects.get).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.gce.failures import LaunchFailure
from goldfish.backends.profiles import BUILT_IN
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig
from goldfish.errors import ConfigError


class Compute:
    """``image_from_family``/``default_service_account`` raising ``failure`` (or answering)."""

    def __init__(self, failure: LaunchFailure | None = None) -> None:
        self.failure = failure
        self.calls = 0

    def image_from_family(self, project: str, family: str) -> str:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return f"{family}-v1"

    def default_service_account(self) -> str:
        if self.failure is not None:
            raise self.failure
        return "123-compute@developer.gserviceaccount.com"


def _backend(tmp_path: Path, compute: Compute, **gce: object) -> GceBackend:
    config = GoldfishConfig(project_name="p")
    for key, value in gce.items():
        setattr(config.gce, key, value)
    settings = BackendSettings(config=config, project_root=tmp_path, venvs=tmp_path, locks=tmp_path)
    return GceBackend(settings, lambda: compute, None)  # type: ignore[arg-type,return-value]


def _not_found(text: str) -> LaunchFailure:
    return LaunchFailure(text, category="invalid_request", reason_code="notFound")


def test_image_check_when_gce_says_the_family_is_gone_refuses_naming_the_setting(tmp_path: Path) -> None:
    missing = _not_found("The resource 'projects/debian-cloud/global/images/family/debian-12' was not found")
    backend = _backend(tmp_path, Compute(missing))

    with pytest.raises(ConfigError) as info:
        backend._check_image(BUILT_IN["cpu-large"])

    assert "debian-cloud/debian-12" in info.value.message
    assert "gce.profile_overrides.cpu-large.image_family" in info.value.remedy


def test_image_check_when_the_endpoint_cannot_answer_it_goes_on_and_asks_once(tmp_path: Path) -> None:
    compute = Compute(_not_found("The requested URL was not found on this server."))
    backend = _backend(tmp_path, compute)

    backend._check_image(BUILT_IN["cpu-large"])
    backend._check_image(BUILT_IN["cpu-large"])

    assert compute.calls == 1


def test_service_account_when_none_is_configured_is_the_projects_default(tmp_path: Path) -> None:
    assert _backend(tmp_path, Compute())._service_account() == "123-compute@developer.gserviceaccount.com"
    configured = _backend(tmp_path, Compute(), service_account="vm@p.iam.gserviceaccount.com")
    assert configured._service_account() == "vm@p.iam.gserviceaccount.com"


def test_service_account_when_the_default_cannot_be_looked_up_launches_without_one(tmp_path: Path) -> None:
    backend = _backend(tmp_path, Compute(_not_found("The requested URL was not found on this server.")))
    assert backend._service_account() is None
