"""Local storage: a folder in the project (``.goldfish/storage``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from goldfish.errors import InvalidPathError
from goldfish.fileops import link_tree

READ_ONLY_FILE = 0o444
WRITTEN_FILE = 0o644


def replace_file(target: Path, fill: Callable[[Path], object]) -> None:
    """Create ``target`` atomically: ``fill`` writes a temporary file next to it, then it is renamed.

    Args:
        target: The file to create or replace (its folder is created when missing).
        fill: Writes the content into the temporary path it is given.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    temp = Path(name)
    try:
        fill(temp)
        temp.chmod(WRITTEN_FILE)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


class LocalStorage:
    """Keys are relative paths under ``root``."""

    scheme = "file"

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise InvalidPathError(f"storage key {key!r} leaves the storage root", details={"key": key})
        return path

    def uri(self, key: str) -> str:
        """``file://`` URI of ``key``."""
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str | None:
        """The key of a ``file://`` URI under the root (``""`` for the root), else None."""
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in {"", "localhost"}:
            return None
        path = Path(os.path.normpath(unquote(parts.path)))
        if path == self.root:
            return ""
        if self.root not in path.parents:
            return None
        return path.relative_to(self.root).as_posix()

    def exists(self, key: str) -> bool:
        """True when the key exists."""
        return self._path(key).exists()

    def put_dir(self, local: Path, key: str, *, move: bool = False) -> None:
        """Store ``local`` under ``key``; files become read-only (stored artifacts never change)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        if move:
            os.replace(local, target)
        else:
            shutil.copytree(local, target, symlinks=True)
        for folder, _dirs, files in os.walk(target):
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(READ_ONLY_FILE)

    def get_dir(self, key: str, local: Path) -> None:
        """Hardlink the stored files into ``local`` (falls back to copying across devices)."""
        source = self._path(key)
        link_tree(source, local)

    def put_file(self, local: Path, key: str) -> None:
        """Copy the file ``local`` to ``key`` (atomically replacing what was there)."""
        replace_file(self._path(key), lambda temp: shutil.copyfile(local, temp))

    def get_file(self, key: str, local: Path) -> bool:
        """Copy ``key`` to ``local`` through a temporary file; False when ``key`` is not a file."""
        source = self._path(key)
        if not source.is_file():
            return False
        try:
            replace_file(local, lambda temp: shutil.copyfile(source, temp))
        except FileNotFoundError:
            if source.exists():
                raise
            return False  # removed while we copied
        return True

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` (atomically replacing what was there)."""
        replace_file(self._path(key), lambda temp: temp.write_bytes(data))

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        """The bytes of ``key`` from byte ``offset``; None when it is missing or a folder."""
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(offset)
                return handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def list_keys(self, prefix: str) -> list[str]:
        """Every file key under the folder ``prefix``, relative to the root, sorted."""
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        keys = [
            (Path(current) / name).relative_to(self.root).as_posix()
            for current, _dirs, files in os.walk(folder)
            for name in files
        ]
        return sorted(keys)

    def local_path(self, key: str) -> Path:
        """The folder or file of ``key``."""
        return self._path(key)

    def read_text(self, key: str, offset: int = 0) -> str:
        """Text from byte ``offset``; empty when the file is missing."""
        return (self.read_bytes(key, offset) or b"").decode("utf-8", errors="replace")

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
