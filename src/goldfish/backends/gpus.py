"""This machine's GPUs: discovery, the readiness check before a GPU stage, and the refusal when too few.

Discovery asks ``nvidia-smi``; when the server's ``CUDA_VISIBLE_DEVICES`` is set, only the GPUs
it names are used (by index or UUID; without nvidia-smi its indices are taken as they are).
Stages are handed whole GPUs by index in nvidia-smi's order; the process backend sets
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers them the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from goldfish.errors import GoldfishError
from goldfish.io.gpu import GpuQueryError, GpuReading, query_gpus

log = logging.getLogger("goldfish.gpus")
READY_POLL_SECONDS = 2.0
LOCAL_GPU_BACKENDS = ("process", "docker")  # GCE stages take their GPUs from the profile


class GpuUnavailableError(GoldfishError):
    """A stage asks for more GPUs than this machine has."""

    code = "GPU_UNAVAILABLE"
    default_remedy = (
        "Lower compute.gpus in configs/<stage>.yaml to what `goldfish doctor` shows, or run the stage on "
        "a GPU profile on GCE (compute.profile)."
    )


class GpuNotReadyError(GoldfishError):
    """The stage's GPUs were not visible with enough free memory in time."""

    code = "GPU_NOT_READY"
    default_remedy = (
        "Free the GPUs (nvidia-smi shows what holds them), or lower gpu_check.min_free_memory_mb in "
        "goldfish.yaml, then run again."
    )


@dataclass(frozen=True)
class HostGpus:
    """What discovery found: device indices, the readings behind them and why there are none."""

    devices: list[int]
    readings: list[GpuReading]
    source: str  # "nvidia-smi", "CUDA_VISIBLE_DEVICES" or "none"
    problem: str | None = None

    def describe(self) -> dict[str, object]:
        """JSON-able summary for doctor and status."""
        return {
            "count": len(self.devices),
            "source": self.source,
            "gpus": [
                {
                    "index": r.index,
                    "memory_total_mb": r.memory_total_mb,
                    "memory_free_mb": r.memory_free_mb,
                    "utilization_pct": r.utilization_pct,
                }
                for r in self.readings
                if r.index in self.devices
            ]
            or [{"index": device} for device in self.devices],
            "problem": self.problem,
        }


def _visible_filter(value: str, readings: list[GpuReading]) -> list[int]:
    """The indices ``CUDA_VISIBLE_DEVICES`` names (CUDA stops at the first entry it cannot use)."""
    by_uuid = {r.uuid: r.index for r in readings}
    known = {r.index for r in readings}
    chosen: list[int] = []
    for entry in (part.strip() for part in value.split(",")):
        index = int(entry) if entry.isdigit() else by_uuid.get(entry)
        if index is None or index < 0 or (readings and index not in known):
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


def discover(
    environ: Mapping[str, str] | None = None, query: Callable[[], list[GpuReading]] = query_gpus
) -> HostGpus:
    """The GPUs stages may use on this machine."""
    env = environ if environ is not None else os.environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    try:
        readings = query()
        problem = None
    except GpuQueryError as exc:
        readings, problem = [], str(exc)
    if visible is not None:
        return HostGpus(_visible_filter(visible, readings), readings, "CUDA_VISIBLE_DEVICES", problem)
    if readings:
        return HostGpus([r.index for r in readings], readings, "nvidia-smi")
    return HostGpus([], [], "none", problem)


def require(wanted: int, host: HostGpus, stage: str) -> None:
    """Refuse a stage that asks for more GPUs than the host has.

    Raises:
        GpuUnavailableError: naming what was asked and what was found.
    """
    if wanted > len(host.devices):
        found = f"{len(host.devices)} GPU(s) (via {host.source})"
        why = f" ({host.problem})" if host.problem and not host.devices else ""
        raise GpuUnavailableError(
            f"Stage '{stage}' asks for {wanted} GPU(s) (compute.gpus) but this machine has {found}{why}.",
            details={"stage": stage, "wanted": wanted, "available": len(host.devices), "source": host.source},
        )


def wait_ready(
    devices: list[int],
    min_free_mb: float,
    timeout_seconds: float,
    query: Callable[[], list[GpuReading]] = query_gpus,
) -> str:
    """Wait (bounded) until every GPU in ``devices`` is visible with ``min_free_mb`` free; what was seen.

    Without nvidia-smi (GPUs named by CUDA_VISIBLE_DEVICES only) nothing can be checked: it says so.

    Raises:
        GpuNotReadyError: with the last readings, when the time is up.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            seen = {r.index: r for r in query()}
        except GpuQueryError as exc:
            if _not_installed(exc):
                return f"not checked: {exc}"
            said = str(exc)
        else:
            short = [d for d in devices if d not in seen or (seen[d].memory_free_mb or 0) < min_free_mb]
            said = "; ".join(
                f"GPU {d}: " + (f"{seen[d].memory_free_mb:g} MB free" if d in seen else "not visible")
                for d in devices
            )
            if not short:
                return said
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GpuNotReadyError(
                f"GPU(s) {devices} not ready after {timeout_seconds:g}s "
                f"(need {min_free_mb:g} MB free each): {said}",
                details={"devices": devices, "min_free_memory_mb": min_free_mb, "seen": said},
            )
        time.sleep(min(READY_POLL_SECONDS, remaining))


def _not_installed(exc: GpuQueryError) -> bool:
    """True when the error is nvidia-smi being absent (nothing to check), not a failing driver."""
    return "not found on PATH" in str(exc)
