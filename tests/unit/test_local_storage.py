"""LocalStorage: the byte/file/listing additions of the storage protocol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from goldfish.errors import InvalidPathError
from goldfish.storage.local import LocalStorage


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def test_write_bytes_when_read_back_returns_the_same_bytes(store: LocalStorage) -> None:
    store.write_bytes("runs/a/job.json", b'{"x": 1}')
    store.write_bytes("runs/a/job.json", b'{"x": 2}')  # replaces
    assert store.read_bytes("runs/a/job.json") == b'{"x": 2}'
    assert [p.name for p in (store.root / "runs/a").iterdir()] == ["job.json"]  # no temp file left


def test_read_bytes_when_missing_or_a_folder_returns_none(store: LocalStorage) -> None:
    store.write_bytes("runs/a/job.json", b"{}")
    assert store.read_bytes("runs/a/nope.json") is None
    assert store.read_bytes("runs/a") is None
    assert store.read_bytes("runs/a/job.json/deeper") is None


def test_list_keys_when_nested_returns_every_file_relative_to_root_sorted(
    store: LocalStorage, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    (folder / "b" / "c").mkdir(parents=True)
    (folder / "z.txt").write_text("z")
    (folder / "b" / "c" / "a.txt").write_text("a")
    store.put_dir(folder, "runs/r/outputs/sig")
    store.write_bytes("runs/other/x", b"x")
    assert store.list_keys("runs/r") == ["runs/r/outputs/sig/b/c/a.txt", "runs/r/outputs/sig/z.txt"]
    assert store.list_keys("") == [*store.list_keys("runs/other"), *store.list_keys("runs/r")]
    assert store.list_keys("runs/missing") == []


def test_put_file_and_get_file_when_round_tripped_copy_the_content(
    store: LocalStorage, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x00\x01payload")
    store.put_file(source, "runs/r/inputs/data.bin")
    target = tmp_path / "deep" / "out.bin"
    assert store.get_file("runs/r/inputs/data.bin", target) is True
    assert target.read_bytes() == b"\x00\x01payload"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_get_file_when_missing_returns_false_and_writes_nothing(store: LocalStorage, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    assert store.get_file("runs/r/none.bin", target) is False
    assert not target.exists()


def test_key_of_when_given_uri_of_a_key_returns_the_key(store: LocalStorage) -> None:
    for key in ("runs/stage-1/outputs/model", "runs/with space/x.txt"):
        assert store.key_of(store.uri(key)) == key
    assert store.key_of(store.uri("runs/a") + "/") == "runs/a"
    assert store.key_of(store.root.as_uri()) == ""


def test_key_of_when_uri_points_elsewhere_returns_none(store: LocalStorage, tmp_path: Path) -> None:
    assert store.key_of((tmp_path / "elsewhere").as_uri()) is None
    assert store.key_of(store.uri("runs") + "/../../etc/passwd") is None
    assert store.key_of("gs://bucket/runs/a") is None


@pytest.mark.parametrize("key", ["../escape", "runs/../../escape", "/etc/passwd"])
def test_new_methods_when_key_leaves_the_root_refuse_it(
    store: LocalStorage, tmp_path: Path, key: str
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    calls: list[Callable[[], object]] = [
        lambda: store.write_bytes(key, b"x"),
        lambda: store.read_bytes(key),
        lambda: store.list_keys(key),
        lambda: store.put_file(source, key),
        lambda: store.get_file(key, tmp_path / "g"),
    ]
    for call in calls:
        with pytest.raises(InvalidPathError):
            call()


def test_read_bytes_when_offset_splits_a_character_returns_the_raw_rest(store: LocalStorage) -> None:
    data = "héllo".encode()
    store.write_bytes("logs/stdout.log", data)
    assert store.read_bytes("logs/stdout.log", 2) == data[2:]  # starts inside "é": no replacement char
    assert store.read_bytes("logs/stdout.log", len(data)) == b""
