"""Inter-process file locks, so two server processes never edit the same workspace at once."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from goldfish.errors import WorkspaceBusyError


@contextmanager
def file_lock(path: Path, what: str, timeout_seconds: float = 30.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``.

    Raises:
        WorkspaceBusyError: when another process keeps it longer than ``timeout_seconds``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(
                        f"{what} is busy with another operation.", details={"lock": path.name}
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)
