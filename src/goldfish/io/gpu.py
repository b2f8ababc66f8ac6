"""``nvidia-smi --query-gpu`` readings (standard library only: the server and the stage runner share it)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

FIELDS = ("index", "uuid", "memory.total", "memory.used", "memory.free", "utilization.gpu", "temperature.gpu")
QUERY_TIMEOUT_SECONDS = 20


class GpuQueryError(RuntimeError):
    """nvidia-smi is missing, failed or printed something unreadable (the message says which)."""


@dataclass(frozen=True)
class GpuReading:
    """One GPU as nvidia-smi reports it (None where it says ``[N/A]``)."""

    index: int
    uuid: str
    memory_total_mb: float | None
    memory_used_mb: float | None
    memory_free_mb: float | None
    utilization_pct: float | None
    temperature_c: float | None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_readings(text: str) -> list[GpuReading]:
    """Readings from ``--query-gpu=<FIELDS> --format=csv,noheader,nounits`` output.

    Raises:
        GpuQueryError: for a line that does not have every field.
    """
    readings = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(FIELDS) or not cells[0].isdigit():
            raise GpuQueryError(f"unexpected nvidia-smi line: {line[:200]!r}")
        index, uuid, *numbers = cells
        total, used, free, util, temp = (_number(cell) for cell in numbers)
        readings.append(GpuReading(int(index), uuid, total, used, free, util, temp))
    return readings


def query_gpus() -> list[GpuReading]:
    """Every GPU the driver shows, in nvidia-smi (PCI bus) order.

    Raises:
        GpuQueryError: when nvidia-smi is not on PATH, fails, hangs or prints something unexpected.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise GpuQueryError("nvidia-smi was not found on PATH")
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={','.join(FIELDS)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuQueryError(f"nvidia-smi failed: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-300:]
        raise GpuQueryError(f"nvidia-smi exited {done.returncode}: {said}")
    return parse_readings(done.stdout)
