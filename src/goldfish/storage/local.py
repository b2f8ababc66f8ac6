"""Local storage: a folder in the project (``.goldfish/storage``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from goldfish.errors import InvalidPathError
from goldfish.fileops import link_tree

READ_ONLY_FILE = 0o444


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

    def local_path(self, key: str) -> Path:
        """The folder or file of ``key``."""
        return self._path(key)

    def read_text(self, key: str, offset: int = 0) -> str:
        """Text from byte ``offset``; empty when the file is missing."""
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
