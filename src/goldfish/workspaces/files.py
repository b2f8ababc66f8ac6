"""Read access to a workspace's files: a slot folder, or a saved version in the store."""

from __future__ import annotations

import os
from pathlib import Path

from goldfish.errors import InvalidPathError, SlotTooLargeError, UnsafeSymlinkError
from goldfish.workspaces.dev_repo import DevRepo

# The largest slot file a reader loads into memory (YAML files are refused well before this).
MAX_READ_BYTES = 8 * 1024 * 1024


class SlotFiles:
    """Files of a mounted slot; nothing outside the slot is ever read.

    Every path is resolved (links included) and refused when it leaves the slot, so a folder
    or file in the slot that links out of it fails the same way as it does at save.
    """

    def __init__(self, root: Path):
        self.root = root

    def _path(self, rel: str) -> Path:
        """The path of ``rel`` in the slot, refused when it (or a folder on the way) leads out."""
        if not rel or "\x00" in rel or rel.startswith("/") or ".." in rel.split("/"):
            raise InvalidPathError(
                f"{rel[:100]!r} is not a path inside the slot.", details={"path": rel[:200]}
            )
        path = self.root / rel
        root, resolved = self.root.resolve(), path.resolve()
        if resolved != root and root not in resolved.parents:
            raise UnsafeSymlinkError(
                f"'{rel}' in the slot is (or goes through) a link to outside the slot; it was not read.",
                details={"path": rel},
            )
        return path

    def read_text(self, rel: str) -> str | None:
        """Text of ``rel``, or None when it is missing (or a link inside the slot)."""
        path = self._path(rel)
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as handle:
            data = handle.read(MAX_READ_BYTES + 1)
        if len(data) > MAX_READ_BYTES:
            raise SlotTooLargeError(
                f"'{rel}' is over {MAX_READ_BYTES} bytes; it was not read.",
                details={"path": rel, "limit": MAX_READ_BYTES},
            )
        return data.decode("utf-8", errors="replace")

    def exists(self, rel: str) -> bool:
        """True when ``rel`` is a regular file."""
        path = self._path(rel)
        return path.is_file() and not path.is_symlink()

    def all_files(self) -> list[str]:
        """Slot-relative paths of every regular file (links and ``__pycache__`` left out), sorted."""
        found = []
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            dirs[:] = [d for d in dirs if d != "__pycache__" and not (here / d).is_symlink()]
            found += [
                (here / f).relative_to(self.root).as_posix() for f in files if not (here / f).is_symlink()
            ]
        return sorted(found)

    def names(self, folder: str, suffix: str) -> list[str]:
        """Slot-relative names of the files directly in ``folder`` ending in ``suffix``, sorted."""
        path = self._path(folder)
        if not path.is_dir():
            return []
        return sorted(
            f"{folder}/{child.name}"
            for child in path.iterdir()
            if child.name.endswith(suffix) and child.is_file() and not child.is_symlink()
        )


class VersionFiles:
    """Files of one saved version."""

    def __init__(self, repo: DevRepo, commit: str):
        self.repo = repo
        self.commit = commit
        self._files: set[str] | None = None

    def read_text(self, rel: str) -> str | None:
        """Text of ``rel`` at the version, or None."""
        return self.repo.read_file(self.commit, rel) if self.exists(rel) else None

    def exists(self, rel: str) -> bool:
        """True when the version has ``rel``."""
        if self._files is None:
            self._files = set(self.repo.list_files(self.commit))
        return rel in self._files

    def all_files(self) -> list[str]:
        """Every file path of the version, sorted."""
        if self._files is None:
            self._files = set(self.repo.list_files(self.commit))
        return sorted(self._files)

    def names(self, folder: str, suffix: str) -> list[str]:
        """Names of the version's files directly in ``folder`` ending in ``suffix``, sorted."""
        if self._files is None:
            self._files = set(self.repo.list_files(self.commit))
        prefix = f"{folder}/"
        return sorted(
            n
            for n in self._files
            if n.startswith(prefix) and "/" not in n[len(prefix) :] and n.endswith(suffix)
        )
