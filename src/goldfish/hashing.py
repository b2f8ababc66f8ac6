"""Content hashes of files and folders (sha256 over sorted relative paths and file contents)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 and size of one file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def hash_path(path: Path) -> tuple[str, int]:
    """sha256 and total size of a file or a folder tree (symlinks hashed by their target text)."""
    if path.is_file() and not path.is_symlink():
        return hash_file(path)
    digest = hashlib.sha256()
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                entry, size = hashlib.sha256(os.readlink(full).encode()).hexdigest(), 0
            else:
                entry, size = hash_file(full)
            digest.update(f"{rel}\0{entry}\n".encode())
            total += size
    return digest.hexdigest(), total


def hash_json(value: Any) -> str:
    """sha256 of a JSON value in canonical form."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
