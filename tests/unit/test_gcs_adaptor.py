"""The GCS client's one door: a missing library is a structured error that names the install command."""

from __future__ import annotations

import sys

import pytest

from goldfish.errors import StorageError
from goldfish.storage.gcs import GcsStorage


def test_gcs_store_when_the_client_library_is_missing_says_so_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)

    with pytest.raises(StorageError) as raised:
        GcsStorage("some-bucket").exists("runs/x")

    assert raised.value.details["reason"] == "library_missing"
    assert "Google Cloud Storage library is missing" in raised.value.message
    assert "pip install 'google-cloud-storage>=2.16'" in str(raised.value.remedy)
