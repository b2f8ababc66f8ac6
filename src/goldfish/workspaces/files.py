"""Read access to a workspace's files: a slot folder, or a saved version in the store."""

from __future__ import annotations

from pathlib import Path

from goldfish.workspaces.dev_repo import DevRepo


class SlotFiles:
    """Files of a mounted slot (links are not followed out of it)."""

    def __init__(self, root: Path):
        self.root = root

    def read_text(self, rel: str) -> str | None:
        """Text of ``rel``, or None."""
        path = self.root / rel
        if path.is_symlink() or not path.is_file():
            return None
        return path.read_text(encoding="utf-8", errors="replace")

    def exists(self, rel: str) -> bool:
        """True when ``rel`` is a regular file."""
        path = self.root / rel
        return path.is_file() and not path.is_symlink()


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
