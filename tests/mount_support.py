"""Real filesystem faults for the tests: a read-only bind mount and a small full tmpfs.

Mounting needs root (CI runs as root). Elsewhere the tests skip with the reason; under
``CI=true`` a failed mount fails them instead. Every mount is undone when its block ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_support import in_ci


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount {' '.join(args)} failed")


def _umount(path: Path) -> None:
    """Unmount ``path``; lazily when something still holds files open there (a server's database)."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def require_mounts(scratch: Path) -> None:
    """Skip the test (fail it under CI=true) when this process cannot mount filesystems."""
    problem = None
    if os.geteuid() != 0:
        problem = "mounting a read-only or full filesystem needs root"
    else:
        probe = scratch / "mount-probe"
        probe.mkdir(parents=True, exist_ok=True)
        try:
            _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
        except OSError as exc:
            problem = f"cannot mount a tmpfs here: {exc}"
        else:
            _umount(probe)
    if problem is not None:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a folder or a file) read-only while the block runs: a bind mount remounted ro.

    Files a process opened for writing before the block keep working (they belong to the
    mount underneath); everything opened inside it, git's files included, is read-only.
    """
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,ro,bind", str(path))
        yield
    finally:
        _umount(path)


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``path`` while the block runs."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


def fill(folder: Path) -> Path:
    """Write one file in ``folder`` until the filesystem has no byte left; return it."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler
