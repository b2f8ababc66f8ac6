"""Mirroring a folder into a slot: the slot ends up holding exactly the folder's files."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

SKIPPED_NAMES = frozenset({".git", "__pycache__", ".goldfish"})


def mirror_folder(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly what ``source`` holds, minus :data:`SKIPPED_NAMES`.

    Unchanged files are left untouched (so saving the slot costs what changed); links are copied
    as links (the version save refuses those that leave the slot).
    """
    wanted: set[str] = set()
    for rel, kind in _entries(source):
        wanted.add(rel)
        _copy_entry(source / rel, target / rel, kind)
    _remove_unwanted(target, wanted)


def _entries(source: Path) -> list[tuple[str, str]]:
    """``(relative path, "dir" | "file" | "link")`` of everything to copy, parents first."""
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        kept: list[str] = []
        for name in sorted(dirnames):
            rel = (here / name).relative_to(source).as_posix()
            if name in SKIPPED_NAMES:
                continue
            if (here / name).is_symlink():
                found.append((rel, "link"))
            else:
                kept.append(name)
                found.append((rel, "dir"))
        dirnames[:] = kept
        for name in sorted(filenames):
            path = here / name
            if name in SKIPPED_NAMES or not (path.is_symlink() or path.is_file()):
                continue
            found.append((path.relative_to(source).as_posix(), "link" if path.is_symlink() else "file"))
    return found


def _copy_entry(source: Path, target: Path, kind: str) -> None:
    if kind == "dir":
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        target.mkdir(exist_ok=True)
        return
    if kind == "link":
        link = os.readlink(source)
        if target.is_symlink() and os.readlink(target) == link:
            return
        _remove(target)
        target.symlink_to(link)
        return
    if target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False):
        return
    _remove(target)
    shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _remove_unwanted(target: Path, wanted: set[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(target, topdown=False):
        here = Path(dirpath)
        for name in [*filenames, *dirnames]:
            path = here / name
            if path.relative_to(target).as_posix() not in wanted:
                _remove(path)
