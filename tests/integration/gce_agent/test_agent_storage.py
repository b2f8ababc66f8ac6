"""The VM agent's storage client against the GCS emulator: resumable, large and empty uploads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from goldfish.backends.gce.vm import errors
from goldfish.backends.gce.vm import storage as agent_storage
from goldfish.storage.gcs import GcsStorage
from tests.fakes.gcs_emulator import GcsBucket

# -- the agent's storage client against the emulator -------------------------------------------


def test_agent_storage_when_files_are_large_or_empty_uploads_them_resumably(
    gcs_bucket: GcsBucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_storage, "RESUMABLE_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(agent_storage, "RESUMABLE_CHUNK", 256 * 1024)
    storage = agent_storage.Storage(None, gcs_bucket.host)
    store = GcsStorage(gcs_bucket.name)
    data = os.urandom(600 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    (tmp_path / "empty.log").write_bytes(b"")
    storage.upload_file(f"gs://{gcs_bucket.name}/runs/r/big.bin", str(big))
    storage.upload_file(f"gs://{gcs_bucket.name}/runs/r/empty.log", str(tmp_path / "empty.log"))
    storage.write_json(f"gs://{gcs_bucket.name}/runs/r/ack.json", {"a": 1})
    assert store.read_bytes("runs/r/big.bin") == data
    assert store.read_bytes("runs/r/empty.log") == b""
    assert json.loads(store.read_bytes("runs/r/ack.json") or b"") == {"a": 1}
    assert sorted(storage.list_names(f"gs://{gcs_bucket.name}/runs/r/")) == [
        "runs/r/ack.json",
        "runs/r/big.bin",
        "runs/r/empty.log",
    ]
    back = tmp_path / "back.bin"
    storage.download_to(f"gs://{gcs_bucket.name}/runs/r/big.bin", str(back))
    assert back.read_bytes() == data
    with pytest.raises(errors.HttpError) as caught:
        storage.read_bytes(f"gs://{gcs_bucket.name}/runs/r/missing")
    assert caught.value.status == 404
