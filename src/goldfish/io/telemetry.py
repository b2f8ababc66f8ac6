"""System telemetry of a running stage as metrics (standard library only).

``python -m goldfish.io.telemetry PID SINCE CPU_SECONDS`` is the sampler process that
:class:`~goldfish.io.lazy_sampler.LazySampler` starts one interval into the stage. Every
``GOLDFISH_TELEMETRY_INTERVAL`` seconds it appends ``sys/cpu_pct`` and ``sys/rss_mb`` of the
stage's process tree (``PID`` and its descendants, the sampler left out) and, for a stage given
GPUs, ``sys/gpu<i>/util``, ``sys/gpu<i>/mem_mb`` and ``sys/gpu<i>/temp_c`` (``i`` = the stage's
own GPU number) to its metrics file. A series never passes ``GOLDFISH_TELEMETRY_MAX_POINTS``: each
time half of the remaining budget is used the interval doubles, and sampling stops at the cap. A
part that fails (no /proc, nvidia-smi gone) says so once on stderr and stops; the stage is never
affected. The sampler stops when its stdin becomes readable (the runner wrote to it or closed it)
or when the process that started it is gone.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from goldfish.io.gpu import GpuQueryError, GpuReading, query_gpus
from goldfish.io.lazy_sampler import DEFAULT_MAX_POINTS, INTERVAL_ENV, MAX_POINTS_ENV, METRICS_ENV, env_number


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
            interval=env_number(env.get(INTERVAL_ENV), 0.0),
            max_points=int(env_number(env.get(MAX_POINTS_ENV), DEFAULT_MAX_POINTS)),
            gpu_count=int(env_number(env.get("GOLDFISH_GPU_COUNT"), 0)),
            metrics_file=env.get(METRICS_ENV),
            visible=visible,
        )


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
    """CPU share and resident memory of a process and its descendants, from /proc.

    ``exclude`` are processes left out with their descendants (the sampler itself); ``baseline``
    is (monotonic time, CPU seconds used by then) for the first sample's CPU share.
    """

    def __init__(self, pid: int, exclude: Collection[int] = (), baseline: tuple[float, float] | None = None):
        self.pid = pid
        self._exclude = set(exclude)
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
        self._last = None if baseline is None else (baseline[0], baseline[1] * self._ticks)

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
            if pid in self._exclude:
                continue
            members.append(pid)
            queue.extend(children.get(pid, []))
        return members

    def sample(self) -> dict[str, float]:
        """``sys/cpu_pct`` (since the last sample or the baseline; else absent) and ``sys/rss_mb``."""
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
    """Samples a stage's process tree (and its GPUs) into the metrics file, in the calling thread."""

    def __init__(self, tree: ProcessTree, settings: TelemetrySettings):
        self.settings = settings
        self._tree = tree
        self._gpus = settings.gpu_count > 0
        self._process = True

    def run(self, wait: Callable[[float], bool]) -> None:
        """Sample at once (one interval has passed when the sampler starts), then every interval.

        ``wait(seconds)`` returns True when sampling must stop.
        """
        interval, points, budget = self.settings.interval, 0, self.settings.max_points
        if interval <= 0 or not self.settings.metrics_file:
            return
        next_doubling = max(1, budget // 2)
        while points < budget and (self._gpus or self._process):
            self._write(self.sample())
            points += 1
            if points >= next_doubling:
                interval *= 2
                next_doubling += max(1, (budget - next_doubling) // 2)
            if wait(interval):
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


def _stop_signal(fd: int, parent: int) -> Callable[[float], bool]:
    """A ``wait`` that ends early, True, once ``fd`` is readable or the parent process is gone."""

    def wait(seconds: float) -> bool:
        readable, _, _ = select.select([fd], [], [], seconds)
        return bool(readable) or os.getppid() != parent

    return wait


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sampler process: ``PID SINCE CPU_SECONDS`` (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        pid, since, cpu_seconds = int(args[0]), float(args[1]), float(args[2])
    except (IndexError, ValueError):
        print("usage: python -m goldfish.io.telemetry PID SINCE CPU_SECONDS", file=sys.stderr)
        return 2
    tree = ProcessTree(pid, exclude={os.getpid()}, baseline=(since, cpu_seconds))
    Sampler(tree, TelemetrySettings.from_environment()).run(_stop_signal(0, os.getppid()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
