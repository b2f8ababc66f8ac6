"""What a backup is at its destination: its id, its files, its manifest.

A backup is a folder ``<backup_id>/`` at ``backup.destination`` (a local folder or a
``gs://bucket/prefix``) holding :data:`PARTS` and, written last, ``manifest.json`` (counts, file
hashes and sizes): a folder without it is an unfinished backup and is never listed.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goldfish.backups.models import BackupCorruptError, BackupCounts, BackupInfo
from goldfish.config import GoldfishConfig
from goldfish.errors import InvalidArgumentError
from goldfish.hashing import hash_file
from goldfish.paths import CONFIG_FILENAME
from goldfish.storage.gcs import GcsStorage
from goldfish.storage.local import LocalStorage
from goldfish.storage.protocol import Storage

BACKUP_ID = re.compile(r"^bk-\d{8}-\d{6}-[0-9a-f]{6}$")
MANIFEST = "manifest.json"
DB_FILE = "goldfish.db"
BUNDLE = "versions.bundle"
FILES = "files.tar.gz"
PARTS = (DB_FILE, BUNDLE, CONFIG_FILENAME, FILES)
FORMAT = 1


def open_destination(config: GoldfishConfig, root: Path) -> tuple[Storage, str]:
    """The store ``backup.destination`` names, and how to show it (a path or ``gs://`` URI)."""
    destination = config.backup.destination
    if destination.startswith("gs://"):
        bucket, _, prefix = destination[5:].partition("/")
        return GcsStorage(bucket, prefix, config.gce.project_id), destination.rstrip("/")
    path = Path(destination).expanduser()
    folder = path if path.is_absolute() else root / path
    return LocalStorage(folder), str(folder.resolve())


def new_backup_id() -> str:
    """``bk-YYYYMMDD-HHMMSS-<6 hex>``: sorts by creation time."""
    return f"bk-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def check_id(backup_id: str) -> str:
    """``backup_id`` when it has the shape of a backup id, else INVALID_ARGUMENT."""
    if not isinstance(backup_id, str) or not BACKUP_ID.fullmatch(backup_id):
        raise InvalidArgumentError(
            f"{str(backup_id)[:80]!r} is not a backup id (bk-YYYYMMDD-HHMMSS-xxxxxx).",
            details={"field": "backup_id"},
            remedy="Use a backup_id from list_backups.",
        )
    return backup_id


def backup_location(base: str, backup_id: str) -> str:
    """Where backup ``backup_id`` lies, for display."""
    return f"{base}/{backup_id}"


def read_manifest(store: Storage, backup_id: str) -> dict[str, Any] | None:
    """The manifest of a complete backup, or None (no manifest, or not a JSON object)."""
    data = store.read_bytes(f"{backup_id}/{MANIFEST}")
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def backup_info(manifest: dict[str, Any], location: str) -> BackupInfo:
    """What list_backups shows of one backup."""
    return BackupInfo(
        backup_id=manifest["backup_id"],
        created=manifest["created"],
        reason=manifest.get("reason", ""),
        size_bytes=int(manifest.get("size_bytes", 0)),
        location=location,
        counts=BackupCounts(**manifest["counts"]),
        include_outputs=bool(manifest.get("include_outputs")),
        automatic=bool(manifest.get("automatic")),
    )


def fetch(store: Storage, backup_id: str, manifest: dict[str, Any], staging: Path) -> None:
    """Download every part and check it against the manifest's hash."""
    files = manifest.get("files") or {}
    for name in PARTS:
        local = staging / name
        expected = files.get(name) or {}
        if not store.get_file(f"{backup_id}/{name}", local) or hash_file(local)[0] != expected.get("sha256"):
            raise BackupCorruptError(
                f"Backup {backup_id} is damaged: {name} is missing or differs from its manifest.",
                details={"backup_id": backup_id, "file": name},
            )


def root_uri(root: Path) -> str:
    """The ``file://`` URI of a project root, with a trailing slash."""
    return root.resolve().as_uri().rstrip("/") + "/"
