"""The telemetry sampler process (``python -m goldfish.io.telemetry``) and the /proc tree it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldfish.io.lazy_sampler import sampling_interval
from goldfish.io.telemetry import ProcessTree

HOLDER = "import sys, time\nblob = b'x' * (64 * 1024 * 1024)\nprint('ready', flush=True)\ntime.sleep(60)\n"


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    """A child of this process holding 64 MiB resident."""
    with subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
        proc.kill()


def test_process_tree_counts_descendants_and_leaves_out_the_excluded_ones(
    holder: subprocess.Popen[str],
) -> None:
    with_child = ProcessTree(os.getpid()).sample()["sys/rss_mb"]
    without = ProcessTree(os.getpid(), exclude={holder.pid}).sample()["sys/rss_mb"]

    assert with_child - without >= 60


def test_process_tree_first_sample_has_a_cpu_share_only_with_a_baseline() -> None:
    assert "sys/cpu_pct" not in ProcessTree(os.getpid()).sample()
    since = time.monotonic() - 1.0
    assert "sys/cpu_pct" in ProcessTree(os.getpid(), baseline=(since, 0.0)).sample()


def test_sampler_process_samples_at_once_and_stops_when_told_on_stdin(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    env = {
        **os.environ,
        "GOLDFISH_TELEMETRY_INTERVAL": "0.05",
        "GOLDFISH_TELEMETRY_MAX_POINTS": "2000",
        "GOLDFISH_METRICS_FILE": str(metrics),
    }
    argv = [sys.executable, "-m", "goldfish.io.telemetry", str(os.getpid()), repr(time.monotonic()), "0"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, env=env) as sampler:
        assert sampler.stdin is not None
        deadline = time.monotonic() + 30
        while not metrics.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.stdin.write(b"stop")
        sampler.stdin.flush()
        assert sampler.wait(timeout=30) == 0

    names = {json.loads(line)["name"] for line in metrics.read_text(encoding="utf-8").splitlines()}
    assert {"sys/rss_mb", "sys/cpu_pct"} <= names


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"GOLDFISH_TELEMETRY_INTERVAL": "10", "GOLDFISH_METRICS_FILE": "/m"}, 10.0),
        ({"GOLDFISH_TELEMETRY_INTERVAL": "10"}, 0.0),
        ({"GOLDFISH_TELEMETRY_INTERVAL": "0", "GOLDFISH_METRICS_FILE": "/m"}, 0.0),
        ({"GOLDFISH_TELEMETRY_INTERVAL": "x", "GOLDFISH_METRICS_FILE": "/m"}, 0.0),
        (
            {
                "GOLDFISH_TELEMETRY_INTERVAL": "1",
                "GOLDFISH_METRICS_FILE": "/m",
                "GOLDFISH_TELEMETRY_MAX_POINTS": "0",
            },
            0.0,
        ),
    ],
)
def test_sampling_interval_is_zero_when_telemetry_is_off(env: dict[str, str], interval: float) -> None:
    assert sampling_interval(env) == interval
