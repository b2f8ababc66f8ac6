"""The storage protocol every backend implements (a local folder or a GCS bucket)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    """A key → bytes store with folders, addressed by ``/``-separated keys relative to its root.

    Keys never start with ``/`` and never contain ``..``; a store refuses such keys with
    :class:`goldfish.errors.InvalidPathError`. A folder key names every file below it.
    """

    scheme: str

    def uri(self, key: str) -> str:
        """A URI naming ``key`` (``file://...`` or ``gs://...``)."""

    def key_of(self, uri: str) -> str | None:
        """The key ``uri`` names when it points into this store, else None (inverse of :meth:`uri`)."""

    def exists(self, key: str) -> bool:
        """True when the key (file or folder) exists."""

    def put_dir(self, local: Path, key: str, *, move: bool = False) -> None:
        """Store a local folder under ``key`` (``move`` lets a local store take it over)."""

    def get_dir(self, key: str, local: Path) -> None:
        """Materialise ``key`` as a local folder (hardlinks where the store is local)."""

    def put_file(self, local: Path, key: str) -> None:
        """Store one local file as ``key`` (replacing what was there)."""

    def get_file(self, key: str, local: Path) -> bool:
        """Write ``key`` to the file ``local`` (via a temporary file); False when the key is missing."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` as the file ``key`` (replacing what was there)."""

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        """The bytes of the file ``key`` from byte ``offset``; None when it is missing."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every file key below the folder ``prefix`` (``""``: the whole store), sorted."""

    def local_path(self, key: str) -> Path | None:
        """The file-system path of ``key`` when the store is local, else None."""

    def read_text(self, key: str, offset: int = 0) -> str:
        """Text of a file key from byte ``offset`` (empty when missing)."""

    def delete(self, key: str) -> None:
        """Remove a key or folder (no error when missing)."""
