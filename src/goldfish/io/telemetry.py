"""System telemetry of a running stage as metrics (standard library only).

Every ``GOLDFISH_TELEMETRY_INTERVAL`` seconds the runner appends ``sys/cpu_pct`` and ``sys/rss_mb``
of the stage's process tree and, for a stage given GPUs, ``sys/gpu<i>/util``, ``sys/gpu<i>/mem_mb``
and ``sys/gpu<i>/temp_c`` (``i`` = the stage's own GPU number) to its metrics file. A series
never passes ``GOLDFISH_TELEMETRY_MAX_POINTS``: each time half of the remaining budget is used
the interval doubles, and sampling stops at the cap. A part that fails (no /proc, nvidia-smi
gone) says so once on stderr and stops; the stage is never affected.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from goldfish.io.gpu import GpuQueryError, GpuReading, query_gpus

JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class TelemetrySettings:
    """What to sample, how often and where to: read from the stage's environment."""

    interval: float
    max_points: int
    gpu_count: int
    metrics_file: str | None
    visible: tuple[int, ...] | None  # nvidia-smi indices the stage may use (process backend)

    @classmethod
    def from_environment(cls) -> TelemetrySettings:
        """Settings from ``GOLDFISH_TELEMETRY_*``, ``GOLDFISH_GPU_COUNT`` and ``CUDA_VISIBLE_DEVICES``."""
        env = os.environ
        visible_raw = env.get("CUDA_VISIBLE_DEVICES")
        visible = None
        if visible_raw and all(part.strip().isdigit() for part in visible_raw.split(",")):
            visible = tuple(int(part) for part in visible_raw.split(","))
        return cls(
            interval=_number(env.get("GOLDFISH_TELEMETRY_INTERVAL"), 0.0),
            max_points=int(_number(env.get("GOLDFISH_TELEMETRY_MAX_POINTS"), 2000)),
            gpu_count=int(_number(env.get("GOLDFISH_GPU_COUNT"), 0)),
            metrics_file=env.get("GOLDFISH_METRICS_FILE"),
            visible=visible,
        )


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


def gpu_points(readings: list[GpuReading], count: int, visible: tuple[int, ...] | None) -> dict[str, float]:
    """``sys/gpu<i>/...`` values for the stage's GPUs (by its own numbering)."""
    mine = [r for r in readings if visible is None or r.index in visible][:count]
    points: dict[str, float] = {}
    for number, reading in enumerate(mine):
        for suffix, value in (
            ("util", reading.utilization_pct),
            ("mem_mb", reading.memory_used_mb),
            ("temp_c", reading.temperature_c),
        ):
            if value is not None:
                points[f"sys/gpu{number}/{suffix}"] = value
    return points


class ProcessTree:
    """CPU share and resident memory of a process and its descendants, from /proc."""

    def __init__(self, pid: int):
        self.pid = pid
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
        self._last: tuple[float, float] | None = None

    def _members(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parent = int(stat[stat.rfind(")") + 2 :].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        members, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            members.append(pid)
            queue.extend(children.get(pid, []))
        return members

    def sample(self) -> dict[str, float]:
        """``sys/cpu_pct`` (since the last sample; absent the first time) and ``sys/rss_mb``."""
        cpu_ticks, rss_pages = 0.0, 0.0
        for pid in self._members():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text()
                statm = Path(f"/proc/{pid}/statm").read_text().split()
            except OSError:
                continue
            parts = fields[fields.rfind(")") + 2 :].split()
            cpu_ticks += float(parts[11]) + float(parts[12])
            rss_pages += float(statm[1])
        now = time.monotonic()
        points = {"sys/rss_mb": round(rss_pages * self._page_mb, 1)}
        if self._last is not None and now > self._last[0]:
            used = (cpu_ticks - self._last[1]) / self._ticks
            points["sys/cpu_pct"] = round(max(0.0, used / (now - self._last[0]) * 100), 1)
        self._last = (now, cpu_ticks)
        return points


class Sampler:
    """Samples the stage (``pid``) on a thread and appends the points to the metrics file."""

    def __init__(self, pid: int, settings: TelemetrySettings):
        self.settings = settings
        self._tree = ProcessTree(pid)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpus = settings.gpu_count > 0
        self._process = True

    def start(self) -> None:
        """Start sampling (nothing happens when telemetry is off)."""
        if self.settings.interval <= 0 or not self.settings.metrics_file or self.settings.max_points < 1:
            return
        self._thread = threading.Thread(target=self._loop, name="goldfish-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait (bounded) for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)

    def _loop(self) -> None:
        """The first sample comes one interval after the start (a CPU baseline is taken at once)."""
        interval, points, budget = self.settings.interval, 0, self.settings.max_points
        next_doubling = max(1, budget // 2)
        self._baseline()
        while points < budget and (self._gpus or self._process):
            if self._stop.wait(interval):
                return
            self._write(self.sample())
            points += 1
            if points >= next_doubling:
                interval *= 2
                next_doubling += max(1, (budget - next_doubling) // 2)

    def _baseline(self) -> None:
        try:
            self._tree.sample()
        except (OSError, ValueError, IndexError):
            return

    def sample(self) -> dict[str, float]:
        """One sample of every part still working; a part that fails is reported once and dropped."""
        values: dict[str, float] = {}
        if self._process:
            try:
                values.update(self._tree.sample())
            except (OSError, ValueError, IndexError) as exc:
                self._process = False
                _say(f"process telemetry stopped: {exc}")
        if self._gpus:
            try:
                values.update(gpu_points(query_gpus(), self.settings.gpu_count, self.settings.visible))
            except GpuQueryError as exc:
                self._gpus = False
                _say(f"GPU telemetry stopped: {exc}")
        return values

    def _write(self, values: dict[str, float]) -> None:
        if not values or self.settings.metrics_file is None:
            return
        at = time.time()
        lines = "".join(
            json.dumps({"name": name, "value": value, "step": None, "at": at}) + "\n"
            for name, value in values.items()
        )
        try:
            with open(self.settings.metrics_file, "a", encoding="utf-8") as handle:
                handle.write(lines)
        except OSError as exc:
            self._gpus = self._process = False
            _say(f"telemetry stopped: cannot write metrics: {exc}")


def _say(message: str) -> None:
    print(f"goldfish: {message}", file=sys.stderr, flush=True)
