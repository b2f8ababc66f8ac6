"""Secret Manager as the last source of a GCE stage's secrets, against a local fake of its REST API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from goldfish.backends.gce.secret_manager import SecretManagerError, SecretManagerSource
from goldfish.secrets.resolver import SecretNotSetError, SecretResolver
from goldfish.secrets.store import SecretStore
from tests.fakes.fake_secret_manager import FakeSecretManager


@pytest.fixture
def secret_manager() -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager("proj-1")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def test_source_reads_the_latest_version_and_a_missing_secret_is_none(
    secret_manager: FakeSecretManager,
) -> None:
    secret_manager.secrets["HF_TOKEN"] = "hf_from_secret_manager"  # noqa: S105 - a test value
    source = SecretManagerSource("proj-1", secret_manager.endpoint)

    assert source("HF_TOKEN") == "hf_from_secret_manager"
    assert source("NOPE_TOKEN") is None


def test_source_when_access_is_denied_says_which_role_is_missing(secret_manager: FakeSecretManager) -> None:
    secret_manager.denied.add("HF_TOKEN")

    with pytest.raises(SecretManagerError) as raised:
        SecretManagerSource("proj-1", secret_manager.endpoint)("HF_TOKEN")

    assert "secretAccessor" in raised.value.remedy and "HF_TOKEN" in raised.value.message


def test_resolver_asks_secret_manager_last_and_only_for_gce_stages(
    tmp_path: Path, secret_manager: FakeSecretManager
) -> None:
    secret_manager.secrets.update({"HF_TOKEN": "from-sm", "A_TOKEN": "also-sm"})
    store = SecretStore(tmp_path)
    store.set("A_TOKEN", "from-store")
    resolver = SecretResolver(store, {}, cloud=SecretManagerSource("proj-1", secret_manager.endpoint))

    assert resolver.resolve(["A_TOKEN", "HF_TOKEN"], "stage 'x'", cloud=True) == {
        "A_TOKEN": "from-store",
        "HF_TOKEN": "from-sm",
    }
    assert secret_manager.reads == ["HF_TOKEN"]  # the store answered A_TOKEN
    with pytest.raises(SecretNotSetError) as raised:
        resolver.resolve(["HF_TOKEN"], "stage 'x'", cloud=False)
    assert raised.value.details["missing"] == ["HF_TOKEN"]
    assert resolver.sources(["A_TOKEN"]) == {"A_TOKEN": ["project secrets file", "Secret Manager"]}
