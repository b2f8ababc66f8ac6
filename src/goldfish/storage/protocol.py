"""The storage protocol every backend implements (local now, GCS later)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    """A key → bytes store with folders, addressed by ``/``-separated keys."""

    scheme: str

    def uri(self, key: str) -> str:
        """A URI naming ``key`` (``file://...`` or ``gs://...``)."""

    def exists(self, key: str) -> bool:
        """True when the key (file or folder) exists."""

    def put_dir(self, local: Path, key: str, *, move: bool = False) -> None:
        """Store a local folder under ``key`` (``move`` lets a local store take it over)."""

    def get_dir(self, key: str, local: Path) -> None:
        """Materialise ``key`` as a local folder (hardlinks where the store is local)."""

    def local_path(self, key: str) -> Path | None:
        """The file-system path of ``key`` when the store is local, else None."""

    def read_text(self, key: str, offset: int = 0) -> str:
        """Text of a file key from byte ``offset`` (empty when missing)."""

    def delete(self, key: str) -> None:
        """Remove a key or folder (no error when missing)."""
