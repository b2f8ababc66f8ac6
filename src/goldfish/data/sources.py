"""Registering datasets, listing and deprecating them, and promoting run outputs to sources."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from goldfish.db.sources import SourceRepository, SourceRow
from goldfish.errors import GoldfishError, InvalidArgumentError, InvalidPathError, suggestion_suffix
from goldfish.hashing import hash_path
from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.timeutil import now_iso
from goldfish.validation import text

SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SourceAction = Literal["list", "get", "update", "deprecate"]


class SourceNotFoundError(GoldfishError):
    """No source has that name."""

    code = "SOURCE_NOT_FOUND"
    default_remedy = "Call manage_sources(action='list') to see registered sources, or register_source."


class SourceExistsError(GoldfishError):
    """A source with that name is registered already."""

    code = "SOURCE_EXISTS"
    default_remedy = "Choose another name (sources are immutable: register a new version, e.g. name_v2)."


class SourceChangedError(GoldfishError):
    """A local source's files changed after registration."""

    code = "SOURCE_CHANGED"
    default_remedy = "Register the changed data under a new name; registered sources must not change."


class SourceInfo(BaseModel):
    """A registered source."""

    name: str
    uri: str
    description: str
    metadata: dict[str, Any]
    content_hash: str | None
    size_bytes: int | None
    status: str
    produced_by_run: str | None
    produced_signal: str | None
    created_at: str

    @classmethod
    def of(cls, row: SourceRow) -> SourceInfo:
        """Build from a database row."""
        return cls(
            name=row.name,
            uri=row.uri,
            description=row.description,
            metadata=row.metadata,
            content_hash=row.content_hash,
            size_bytes=row.size_bytes,
            status=row.status,
            produced_by_run=row.produced_by_run,
            produced_signal=row.produced_signal,
            created_at=row.created_at,
        )


def source_name(value: object, field: str = "name") -> str:
    """Validate a source name."""
    if not isinstance(value, str) or not SOURCE_NAME.fullmatch(value):
        raise InvalidArgumentError(
            f"Invalid {field}: use 1-100 letters, digits, '.', '_' or '-'.", details={"field": field}
        )
    return value


class SourceService:
    """Sources live in the database; local ones are hashed and must stay inside the allowed roots."""

    def __init__(self, rows: SourceRepository, allowed_roots: list[Path], project_root: Path):
        self._rows = rows
        self._roots = [root.resolve() for root in allowed_roots]
        self._project_root = project_root

    def local_path(self, uri: str) -> Path:
        """The folder or file of a ``file://`` URI or plain path, refused outside the allowed roots."""
        raw = unquote(urlparse(uri).path) if uri.startswith("file://") else uri
        if not raw or "\x00" in raw or len(raw) > 4096:
            raise InvalidPathError("uri must be gs://..., file://... or a path.", details={"field": "uri"})
        path = Path(raw)
        resolved = (path if path.is_absolute() else self._project_root / path).resolve()
        if not any(resolved == root or root in resolved.parents for root in self._roots):
            raise InvalidPathError(
                f"{resolved} is outside the folders sources may come from.",
                details={"path": str(resolved), "allowed_roots": [str(r) for r in self._roots]},
                remedy="Put the data under the project's data/ folder (or add its folder to data_roots).",
            )
        if not resolved.exists():
            raise InvalidPathError(f"{resolved} does not exist.", details={"path": str(resolved)})
        return resolved

    def register(self, name: str, uri: str, description: str, metadata: dict[str, Any] | None) -> SourceInfo:
        """Register a dataset; local files are hashed now and checked for changes at each use.

        Registering the same data (same location and content) under the same name again returns
        the registered source, so a CI script can register its data on every run.
        """
        source_name(name)
        text(uri, "uri", 4096)
        text(description, "description", 4000, allow_empty=True)
        existing = self._rows.get(name)
        if existing is not None and (uri.startswith("gs://") or existing.uri.startswith("gs://")):
            if existing.uri != uri:
                raise _exists(existing, uri, None)
            return SourceInfo.of(existing)
        content_hash: str | None = None
        size: int | None = None
        if uri.startswith("gs://"):
            stored_uri = uri
        else:
            path = self.local_path(uri)
            content_hash, size = hash_path(path)
            stored_uri = path.as_uri()
        if existing is not None:
            if (existing.uri, existing.content_hash) != (stored_uri, content_hash):
                raise _exists(existing, stored_uri, content_hash)
            return SourceInfo.of(existing)
        now = now_iso()
        row = SourceRow(
            name, stored_uri, description, metadata or {}, content_hash, size, "active", None, None, now, now
        )
        self._rows.insert(row)
        return SourceInfo.of(row)

    def promote(
        self,
        name: str,
        uri: str,
        content_hash: str | None,
        size: int | None,
        run_id: str,
        signal: str,
        metadata: dict[str, Any] | None,
    ) -> SourceInfo:
        """Register a run's output as a source, keeping its lineage."""
        source_name(name, "source_name")
        if self._rows.get(name) is not None:
            raise SourceExistsError(f"Source '{name}' is already registered.", details={"name": name})
        now = now_iso()
        row = SourceRow(
            name,
            uri,
            f"Output '{signal}' of run {run_id}",
            metadata or {},
            content_hash,
            size,
            "active",
            run_id,
            signal,
            now,
            now,
        )
        self._rows.insert(row)
        return SourceInfo.of(row)

    def get(self, name: str) -> SourceInfo:
        """One source."""
        row = self._rows.get(name) if isinstance(name, str) else None
        if row is None:
            names = self._rows.names(active_only=False)
            raise SourceNotFoundError(
                f"No source named {name!r}{suggestion_suffix(str(name), names)}.",
                details={"name": str(name)[:100]},
            )
        return SourceInfo.of(row)

    def names(self) -> list[str]:
        """Active source names (what pipelines may reference)."""
        return self._rows.names()

    def manage(
        self, action: SourceAction, name: str | None, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> tuple[list[SourceInfo], int]:
        """List, get, update metadata of, or deprecate sources."""
        if action == "list":
            rows, total = self._rows.page(limit, offset)
            return [SourceInfo.of(row) for row in rows], total
        if name is None:
            raise InvalidArgumentError(f"action '{action}' needs name.", details={"field": "name"})
        self.get(name)
        if action == "update":
            if metadata is None:
                raise InvalidArgumentError("action 'update' needs metadata.", details={"field": "metadata"})
            self._rows.update(name, metadata=metadata)
        elif action == "deprecate":
            self._rows.update(name, status="deprecated")
        return [self.get(name)], 1

    def verify_unchanged(self, source: SourceInfo) -> Path | None:
        """The local path of a source after checking its size still matches; None for remote ones."""
        if not source.uri.startswith("file://"):
            return None
        path = Path(unquote(urlparse(source.uri).path))
        if not path.exists():
            raise SourceChangedError(
                f"Source '{source.name}' is gone from {path}.", details={"path": str(path)}
            )
        if source.size_bytes is not None and source.produced_by_run is None:
            size = _total_size(path)
            if size != source.size_bytes:
                raise SourceChangedError(
                    f"Source '{source.name}' changed size since registration.",
                    details={"path": str(path), "registered": source.size_bytes, "now": size},
                )
        return path

    def record_use(self, name: str, stage_run_id: str, signal: str) -> None:
        """Lineage: a stage run consumed the source."""
        self._rows.record_use(name, stage_run_id, signal)


def _exists(row: SourceRow, uri: str, content_hash: str | None) -> SourceExistsError:
    return SourceExistsError(
        f"Source '{row.name}' is already registered with other data.",
        details={
            "name": row.name,
            "registered_uri": row.uri,
            "registered_hash": row.content_hash,
            "uri": uri,
            "content_hash": content_hash,
        },
    )


def _total_size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder (a cheap change check: stats only)."""
    if path.is_file():
        return path.stat().st_size
    return sum(
        (Path(folder) / name).stat().st_size
        for folder, _dirs, files in os.walk(path)
        for name in files
        if not (Path(folder) / name).is_symlink()
    )
