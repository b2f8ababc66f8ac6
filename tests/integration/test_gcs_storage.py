"""GcsStorage against gcp-storage-emulator with the real google-cloud-storage client.

Every test gets a fresh bucket (``gcs_bucket``); ``STORAGE_EMULATOR_HOST`` points at the emulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from goldfish.config import GoldfishConfig
from goldfish.errors import ConfigError, InvalidPathError, StorageError
from goldfish.storage import gcs
from goldfish.storage.factory import open_storage
from goldfish.storage.gcs import GcsStorage, crc32c_of, local_target, storage_error
from goldfish.storage.local import LocalStorage
from tests.fakes.gcs_emulator import GcsBucket, GcsEmulator


def _object(store: GcsStorage, name: str) -> Any:
    """The stored object's metadata (generation, crc32c) straight from the client."""
    return store.client.bucket(store.bucket).get_blob(name)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def store(gcs_bucket: GcsBucket) -> GcsStorage:
    return GcsStorage(gcs_bucket.name, "proj/exp")


def test_write_bytes_when_read_back_returns_the_bytes_under_the_prefix(store: GcsStorage) -> None:
    store.write_bytes("runs/r1/job.json", b'{"a": 1}')
    store.write_bytes("runs/r1/job.json", b'{"a": 2}')
    assert store.read_bytes("runs/r1/job.json") == b'{"a": 2}'
    assert _object(store, "proj/exp/runs/r1/job.json").size == 8
    assert store.uri("runs/r1/job.json") == f"gs://{store.bucket}/proj/exp/runs/r1/job.json"


def test_read_bytes_when_object_missing_returns_none(store: GcsStorage) -> None:
    store.write_bytes("runs/r1/other", b"x")
    assert store.read_bytes("runs/r1/job.json") is None


def test_exists_when_key_is_an_object_or_a_folder_with_objects(store: GcsStorage) -> None:
    store.write_bytes("runs/r1/logs/stdout.log", b"hi")
    assert store.exists("runs/r1/logs/stdout.log")
    assert store.exists("runs/r1/logs")
    assert store.exists("runs/r1/")
    assert store.exists("")
    assert not store.exists("runs/r1/log")  # a name prefix is not a folder
    assert not store.exists("runs/r2")


def test_list_keys_when_nested_returns_sorted_keys_relative_to_the_store_root(gcs_bucket: GcsBucket) -> None:
    store = GcsStorage(gcs_bucket.name, "p")
    neighbour = GcsStorage(gcs_bucket.name, "px")  # shares the name prefix, not the folder
    for key in ("runs/b/z.txt", "runs/a/deep/er/x.bin", "runs/a/y", "warm/vm-1/state.json"):
        store.write_bytes(key, b"1")
    neighbour.write_bytes("runs/a/y", b"2")
    assert store.list_keys("runs") == ["runs/a/deep/er/x.bin", "runs/a/y", "runs/b/z.txt"]
    assert store.list_keys("runs/a/") == ["runs/a/deep/er/x.bin", "runs/a/y"]
    assert store.list_keys("") == [*store.list_keys("runs"), "warm/vm-1/state.json"]
    assert store.list_keys("runs/c") == []
    assert neighbour.list_keys("") == ["runs/a/y"]


def test_delete_when_key_is_a_folder_removes_it_and_everything_under_it(store: GcsStorage) -> None:
    for key in ("runs/a", "runs/a/x", "runs/a/y/z", "runs/ab/keep"):
        store.write_bytes(key, b"1")
    store.delete("runs/a")
    assert store.list_keys("") == ["runs/ab/keep"]
    store.delete("runs/a")  # already gone: no error
    store.delete("runs/never/was")


def test_put_dir_then_get_dir_when_round_tripped_reproduces_the_tree(
    store: GcsStorage, tmp_path: Path
) -> None:
    files = {"model.pt": os.urandom(3000), "sub/dir/metrics.json": b"{}", "empty.txt": b""}
    store.put_dir(_tree(tmp_path / "out", files), "runs/r1/outputs/model")
    assert store.list_keys("runs/r1") == sorted(f"runs/r1/outputs/model/{name}" for name in files)
    target = tmp_path / "back"
    store.get_dir("runs/r1/outputs/model", target)
    assert _files_under(target) == files
    assert sorted(p.name for p in (target / "sub/dir").iterdir()) == ["metrics.json"]  # no temp files


def test_put_dir_when_file_unchanged_skips_upload(store: GcsStorage, tmp_path: Path) -> None:
    local = _tree(tmp_path / "out", {"same.bin": b"same bytes", "changed.bin": b"v1", "stale.bin": b"old"})
    store.put_dir(local, "runs/r1/outputs/sig")
    same = _object(store, "proj/exp/runs/r1/outputs/sig/same.bin")
    changed = _object(store, "proj/exp/runs/r1/outputs/sig/changed.bin")
    assert same.crc32c == crc32c_of(local / "same.bin")

    (local / "changed.bin").write_bytes(b"v2")
    (local / "stale.bin").unlink()
    store.put_dir(local, "runs/r1/outputs/sig")

    assert _object(store, "proj/exp/runs/r1/outputs/sig/same.bin").generation == same.generation
    assert _object(store, "proj/exp/runs/r1/outputs/sig/changed.bin").generation != changed.generation
    assert store.read_bytes("runs/r1/outputs/sig/changed.bin") == b"v2"
    assert store.list_keys("runs/r1/outputs/sig") == [
        "runs/r1/outputs/sig/changed.bin",
        "runs/r1/outputs/sig/same.bin",
    ]


def test_put_dir_when_folder_holds_a_symlink_refuses_and_uploads_nothing(
    store: GcsStorage, tmp_path: Path
) -> None:
    local = _tree(tmp_path / "out", {"ok.txt": b"fine"})
    secret = _tree(tmp_path / "secret", {"key": b"s3cr3t"})
    (local / "leak").symlink_to(secret / "key")
    with pytest.raises(InvalidPathError, match="symbolic link"):
        store.put_dir(local, "runs/r1/outputs/sig")
    assert store.list_keys("") == []


def test_put_file_when_above_the_resumable_threshold_uploads_in_chunks(
    store: GcsStorage, gcs_emulator: GcsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs, "RESUMABLE_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(gcs, "UPLOAD_CHUNK_SIZE", 256 * 1024)
    data = os.urandom(600 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store.put_file(source, "runs/r1/inputs/big.bin")
    target = tmp_path / "back.bin"
    assert store.get_file("runs/r1/inputs/big.bin", target)
    assert target.read_bytes() == data
    assert _object(store, "proj/exp/runs/r1/inputs/big.bin").crc32c == crc32c_of(source)
    chunk_puts = [
        line
        for line in gcs_emulator.requests_seen().splitlines()
        if f"PUT /upload/storage/v1/b/{store.bucket}/o?uploadType=resumable" in line
    ]
    assert len(chunk_puts) == 3  # 256 KiB + 256 KiB + the rest


def test_get_file_when_object_missing_returns_false_and_writes_nothing(
    store: GcsStorage, tmp_path: Path
) -> None:
    target = tmp_path / "x" / "job.json"
    assert store.get_file("runs/r1/job.json", target) is False
    assert list(target.parent.iterdir()) == []


def test_read_text_when_offset_given_returns_the_text_from_that_byte(store: GcsStorage) -> None:
    store.write_bytes("runs/r1/logs/stdout.log", b"line one\nline two\n")
    assert store.read_text("runs/r1/logs/stdout.log") == "line one\nline two\n"
    assert store.read_text("runs/r1/logs/stdout.log", 9) == "line two\n"
    assert store.read_text("runs/r1/logs/stdout.log", 18) == ""
    assert store.read_text("runs/r1/logs/stdout.log", 500) == ""
    assert store.read_text("runs/r1/logs/stderr.log", 0) == ""


def test_prefix_when_empty_names_objects_at_the_bucket_root(gcs_bucket: GcsBucket) -> None:
    store = GcsStorage(gcs_bucket.name)
    store.write_bytes("runs/r1/job.json", b"{}")
    assert store.uri("runs/r1/job.json") == f"gs://{gcs_bucket.name}/runs/r1/job.json"
    assert store.list_keys("") == ["runs/r1/job.json"]
    assert store.local_path("runs/r1/job.json") is None


def test_prefix_when_nested_with_slashes_is_normalised(gcs_bucket: GcsBucket) -> None:
    store = GcsStorage(gcs_bucket.name, "/a/b/c/")
    store.write_bytes("k", b"v")
    assert store.uri("k") == f"gs://{gcs_bucket.name}/a/b/c/k"
    assert store.uri("") == f"gs://{gcs_bucket.name}/a/b/c"
    assert GcsStorage(gcs_bucket.name).list_keys("") == ["a/b/c/k"]


@pytest.mark.parametrize("prefix", ["", "one", "a/b/c"])
def test_key_of_when_given_uri_of_a_key_returns_the_key(prefix: str) -> None:
    store = GcsStorage("bkt", prefix)
    for key in ("runs/r1/job.json", "runs/r1/outputs/features", ""):
        assert store.key_of(store.uri(key)) == key
    assert store.key_of(store.uri("runs/r1/outputs/features") + "/") == "runs/r1/outputs/features"


def test_key_of_when_uri_is_outside_the_store_returns_none() -> None:
    store = GcsStorage("bkt", "one")
    assert store.key_of("gs://other/one/runs/x") is None
    assert store.key_of("gs://bkt2/one/runs/x") is None
    assert store.key_of("gs://bkt/onex/runs/x") is None
    assert store.key_of("gs://bkt/two/runs/x") is None
    assert store.key_of("gs://bkt/one/runs/../../x") is None
    assert store.key_of("gs://bkt/one//runs/x") is None
    assert store.key_of("gs://bkt//one/runs/x") is None
    assert store.key_of("file:///bkt/one/runs/x") is None


@pytest.mark.parametrize("key", ["../escape", "runs/../../escape", "/abs", "runs//x", "runs/./x", "/"])
def test_keys_when_they_leave_the_root_are_refused_before_any_request(key: str, tmp_path: Path) -> None:
    store = GcsStorage("no-such-bucket-never-called", "p")
    source = tmp_path / "f"
    source.write_bytes(b"x")
    calls: list[Callable[[], object]] = [
        lambda: store.write_bytes(key, b"x"),
        lambda: store.read_bytes(key),
        lambda: store.read_text(key),
        lambda: store.exists(key),
        lambda: store.list_keys(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
        lambda: store.put_file(source, key),
        lambda: store.get_file(key, tmp_path / "g"),
        lambda: store.get_dir(key, tmp_path / "d"),
    ]
    for call in calls:
        with pytest.raises(InvalidPathError):
            call()


def test_get_dir_when_an_object_name_has_an_absolute_part_refuses_and_writes_nothing(
    store: GcsStorage, tmp_path: Path
) -> None:
    store.write_bytes("runs/r1/outputs/sig/ok.txt", b"ok")
    hostile = f"proj/exp/runs/r1/outputs/sig/{tmp_path}/escaped.txt"  # "sig//tmp/..." once joined
    store.client.bucket(store.bucket).blob(hostile).upload_from_string(b"evil")
    target = tmp_path / "inputs" / "sig"
    with pytest.raises(InvalidPathError, match="outside"):
        store.get_dir("runs/r1/outputs/sig", target)
    assert not target.exists()
    assert not any(tmp_path.rglob("escaped.txt"))


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "a/..", "/etc/passwd", "a//b", "./a"])
def test_local_target_when_an_object_name_could_leave_the_folder_refuses_it(
    relative: str, tmp_path: Path
) -> None:
    # The emulator itself refuses ".." in names, so the check is exercised directly here.
    with pytest.raises(InvalidPathError):
        local_target(tmp_path, relative)
    assert local_target(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"


def test_missing_bucket_when_used_raises_a_storage_error_naming_it(
    gcs_bucket: GcsBucket, tmp_path: Path
) -> None:
    store = GcsStorage(f"{gcs_bucket.name}-missing", "p")
    calls: list[Callable[[], object]] = [
        lambda: store.list_keys("runs"),
        lambda: store.read_bytes("runs/r1/job.json"),
        lambda: store.read_text("runs/r1/logs/stdout.log"),
        lambda: store.write_bytes("runs/r1/job.json", b"{}"),
        lambda: store.exists("runs/r1"),
        lambda: store.get_file("runs/r1/job.json", tmp_path / "job.json"),
    ]
    for call in calls:
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.details["reason"] == "bucket_not_found"
        assert caught.value.details["bucket"] == store.bucket
        assert store.bucket in caught.value.message
        assert caught.value.to_dict()["code"] == "STORAGE_UNAVAILABLE"


def test_storage_error_when_access_is_refused_names_credentials_in_the_remedy() -> None:
    from google.api_core.exceptions import Forbidden, Unauthorized

    refusals = [
        Forbidden("caller does not have storage.objects.get"),  # type: ignore[no-untyped-call]
        Unauthorized("bad token"),  # type: ignore[no-untyped-call]
    ]
    for refused in refusals:
        error = storage_error(refused, "bkt")
        assert error is not None
        assert error.details == {"bucket": "bkt", "reason": "access_denied", "cause": str(refused)}
        assert "credentials" in error.remedy
    assert storage_error(ValueError("not a client error"), "bkt") is None
    assert storage_error(InvalidPathError("ours"), "bkt") is None


def test_open_storage_when_backend_is_gcs_builds_the_bucket_store(tmp_path: Path) -> None:
    config = GoldfishConfig.model_validate(
        {
            "project_name": "p",
            "storage": {"backend": "gcs", "gcs": {"bucket": "bkt", "prefix": "team/exp"}},
            "gce": {"project_id": "my-project"},
        }
    )
    store = open_storage(config, tmp_path / "storage")
    assert isinstance(store, GcsStorage)
    assert (store.bucket, store.prefix, store.project) == ("bkt", "team/exp", "my-project")
    assert not (tmp_path / "storage").exists()


def test_open_storage_when_backend_is_local_builds_the_folder_store(tmp_path: Path) -> None:
    store = open_storage(GoldfishConfig.model_validate({"project_name": "p"}), tmp_path / "storage")
    assert isinstance(store, LocalStorage)
    assert store.root == (tmp_path / "storage").resolve()


def test_open_storage_when_gcs_lacks_a_bucket_raises_config_error(tmp_path: Path) -> None:
    config = GoldfishConfig.model_validate({"project_name": "p", "storage": {"backend": "gcs"}})
    with pytest.raises(ConfigError, match=r"storage\.gcs\.bucket") as caught:
        open_storage(config, tmp_path / "storage")
    assert "storage.gcs.bucket" in caught.value.remedy


def test_read_bytes_when_offset_given_downloads_only_the_rest(store: GcsStorage) -> None:
    data = "héllo".encode()
    store.write_bytes("runs/x/logs/stdout.log", data)
    assert store.read_bytes("runs/x/logs/stdout.log", 2) == data[2:]  # starts inside "é"
    assert store.read_bytes("runs/x/logs/stdout.log", len(data)) == b""
    assert store.read_bytes("runs/x/logs/absent.log", 3) is None
