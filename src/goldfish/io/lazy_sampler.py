"""Starts the telemetry sampler only when a stage outlives one sampling interval (standard library only).

The sampler is a process of its own (``python -m goldfish.io.telemetry``), not a thread: a thread
beside a busy pure-Python stage waits for the stage's GIL at every file it reads and falls far
behind. A stage that ends within the first interval starts nothing; a longer one gets its first
sample one interval after its start, as if sampling had begun with it (the CPU share of that first
sample counts from the start). The sampler watches the stage's process tree (its own excluded),
stops when the runner writes to or closes the pipe on its stdin, and stops by itself if the runner
is gone.

Only ``os``, ``sys``, ``threading`` and ``time`` are imported here: this module is loaded into
every stage's interpreter, and a stage that ends early must pay for nothing it did not use.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

INTERVAL_ENV = "GOLDFISH_TELEMETRY_INTERVAL"
MAX_POINTS_ENV = "GOLDFISH_TELEMETRY_MAX_POINTS"
METRICS_ENV = "GOLDFISH_METRICS_FILE"
DEFAULT_MAX_POINTS = 2000
STOP_SECONDS = 5.0  # the sampler may be inside one nvidia-smi call when told to stop


def env_number(text: str | None, default: float) -> float:
    """``text`` as a number, ``default`` when it is empty or not a number."""
    try:
        return float(text) if text else default
    except ValueError:
        return default


def sampling_interval(environ: Mapping[str, str] | None = None) -> float:
    """Seconds between samples, or 0 when telemetry is off (no interval, no metrics file, no budget)."""
    env = environ if environ is not None else os.environ
    interval = env_number(env.get(INTERVAL_ENV), 0.0)
    if (
        interval <= 0
        or not env.get(METRICS_ENV)
        or env_number(env.get(MAX_POINTS_ENV), DEFAULT_MAX_POINTS) < 1
    ):
        return 0.0
    return interval


class LazySampler:
    """The telemetry of the process tree under ``pid``, sampled by a process started after one interval.

    ``cpu_seconds`` is the CPU time ``pid`` had already used when the stage started (the runner's
    own start-up, when the stage runs in the runner's interpreter): the first CPU share leaves it out.
    """

    def __init__(self, pid: int, cpu_seconds: float = 0.0):
        self._pid = pid
        self._cpu_seconds = cpu_seconds
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = False
        self._timer: threading.Timer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_fd: int | None = None

    def start(self) -> None:
        """Arm the timer (nothing happens when telemetry is off)."""
        interval = sampling_interval()
        if interval <= 0:
            return
        self._since = time.monotonic()
        self._timer = threading.Timer(interval, self._launch)
        self._timer.daemon = True
        self._timer.start()

    def _launch(self) -> None:
        import subprocess  # noqa: PLC0415 - only a stage that outlives the first interval needs it

        with self._lock:
            if self._stopped:
                return
            read_fd, write_fd = os.pipe()
            argv = [sys.executable, "-m", "goldfish.io.telemetry", str(self._pid), repr(self._since)]
            try:
                self._process = subprocess.Popen(
                    [*argv, repr(self._cpu_seconds)], stdin=read_fd, stdout=subprocess.DEVNULL
                )
            except OSError as exc:
                os.close(write_fd)
                print(f"goldfish: telemetry stopped: cannot start the sampler: {exc}", file=sys.stderr)
                return
            finally:
                os.close(read_fd)
            self._stop_fd = write_fd

    def stop(self) -> None:
        """Cancel the timer, or tell the sampler to stop and wait (bounded) until it has."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
            process, stop_fd = self._process, self._stop_fd
            self._process = self._stop_fd = None
        if process is None or stop_fd is None:
            return
        import contextlib  # noqa: PLC0415 - loaded already, like subprocess: the sampler was started
        import subprocess  # noqa: PLC0415

        with contextlib.suppress(OSError):
            os.write(stop_fd, b"stop")  # readable even when a forked child of the stage holds the pipe too
        os.close(stop_fd)

        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:  # the sampler must never outlive the stage
            process.kill()
            process.wait()
