"""The VM's GPUs: waiting until they are ready, and sampling them while a container runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time

from .errors import AgentFailure, tail

GPU_POLL_SECONDS = 5.0

log = logging.getLogger("goldfish-agent")


def gpus_with_free_memory(output: str, min_free_mb: float = 0.0) -> int:
    """How many lines of ``--query-gpu=memory.free`` output show free memory (at least ``min_free_mb``)."""
    count = 0
    for line in output.splitlines():
        try:
            free = float(line.strip().split(",")[0])
        except ValueError:
            continue
        if free > 0 and free >= min_free_mb:
            count += 1
    return count


def query_gpus(wanted: int, min_free_mb: float = 0.0) -> tuple[bool, str]:
    """Whether ``wanted`` GPUs are visible with ``min_free_mb`` free each, and what nvidia-smi said."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False, "nvidia-smi was not found"
    try:
        done = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        return False, f"nvidia-smi exited {done.returncode}: {tail(done.stderr or done.stdout, 300)}"
    ready = gpus_with_free_memory(done.stdout, min_free_mb)
    enough = f"at least {min_free_mb:g} MB" if min_free_mb > 0 else "free memory"
    said = f"nvidia-smi shows {ready} GPU(s) with {enough} (MB free each: {tail(done.stdout, 300).strip()!r})"
    return ready >= wanted, said


def wait_for_gpus(wanted: int, wait_seconds: float, min_free_mb: float = 0.0) -> None:
    """Poll nvidia-smi until ``wanted`` GPUs have ``min_free_mb`` free, at most ``wait_seconds``.

    Raises:
        AgentFailure: saying what nvidia-smi said last.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        ready, said = query_gpus(wanted, min_free_mb)
        if ready:
            log.info("GPUs ready: %s", said)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AgentFailure(f"{wanted} GPU(s) not ready after {wait_seconds:g}s: {said}")
        time.sleep(min(GPU_POLL_SECONDS, remaining))


GPU_TELEMETRY_FIELDS = "utilization.gpu,memory.used,temperature.gpu"
GPU_TELEMETRY_SUFFIXES = ("util", "mem_mb", "temp_c")


def gpu_telemetry_lines(output: str, count: int, at: float) -> str:
    """Metric lines (``sys/gpu<i>/util|mem_mb|temp_c``) from ``--query-gpu=GPU_TELEMETRY_FIELDS`` output."""
    lines = []
    for number, row in enumerate(line for line in output.splitlines() if line.strip()):
        if number >= count:
            break
        cells = row.split(",")  # zip(strict=...) is newer than the VM's Python 3.9
        for suffix, cell in ((s, cells[i]) for i, s in enumerate(GPU_TELEMETRY_SUFFIXES) if i < len(cells)):
            try:
                value = float(cell.strip())
            except ValueError:
                continue
            point = {"name": f"sys/gpu{number}/{suffix}", "value": value, "step": None, "at": at}
            lines.append(json.dumps(point) + "\n")
    return "".join(lines)


class GpuTelemetry:
    """Samples the VM's GPUs into the job's metrics file while the container runs.

    The same budget as the in-container runner: the interval doubles each time half of the
    remaining ``max_points`` is used, and sampling stops at the cap. A failing nvidia-smi is
    logged once and ends sampling; the job is never affected.
    """

    def __init__(
        self, metrics_file: str, count: int, interval: float, max_points: int, stop: threading.Event
    ):
        self._file = metrics_file
        self._count = count
        self._interval = interval
        self._max_points = max_points
        self._stop = stop

    def run(self) -> None:
        """The sampling loop (a thread's target)."""
        interval, points, budget = self._interval, 0, self._max_points
        next_doubling = max(1, budget // 2)
        exe = shutil.which("nvidia-smi")
        while exe and points < budget and not self._stop.wait(interval):
            try:
                done = subprocess.run(
                    [exe, f"--query-gpu={GPU_TELEMETRY_FIELDS}", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                    stdin=subprocess.DEVNULL,
                )
                self._append(gpu_telemetry_lines(done.stdout, self._count, time.time()))
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("GPU telemetry stopped: %s", exc)
                return
            points += 1
            if points >= next_doubling:
                interval *= 2
                next_doubling += max(1, (budget - next_doubling) // 2)

    def _append(self, text: str) -> None:
        # Created writable for the container's user too: the stage appends its own metrics here.
        fd = os.open(self._file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, 0o666)
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
