"""Hardlinked copies of files and folders (falling back to real copies across devices); atomic writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

Ignore = Callable[[str, list[str]], Iterable[str]]


def link_or_copy(source: str, target: str) -> str:
    """Hardlink ``source`` at ``target``; copy it when a link is impossible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def link_tree(source: Path, target: Path, ignore: Ignore | None = None) -> None:
    """Make ``target`` hold ``source``'s files as hardlinks (a file source lands inside ``target``)."""
    target.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        link_or_copy(str(source), str(target / source.name))
        return
    shutil.copytree(
        source, target, symlinks=True, copy_function=link_or_copy, dirs_exist_ok=True, ignore=ignore
    )


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step.

    Each writer gets its own temporary file (not one per process), so two threads or two
    processes writing the same file at once never rename each other's half-written file.
    """
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
