"""run_overhead: ``run(dry_run=false)`` of a one-stage pipeline on the process backend → stage started.

Two workspaces are mounted side by side: ``big`` (2,000 files / 200 MB of data beside the
pipeline; 200 files / 20 MB with ``--quick``) and ``small`` (20 files). Each round changes one
data file in each workspace, then times ``context.run_service.submit(request)`` with
``use_cache=False`` (so the stage really launches). The stage's first line writes
``time.time()`` into a marker file; "process started" is that stamp minus the wall clock just
before ``submit`` was called, so it includes the stage interpreter's own start-up. Each round
waits (untimed) for the run and its driver to end; big and small alternate within a round.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import Figure, median, ratio, temp_dir
from bench.pipelines import (
    open_project,
    require_completed,
    run_request,
    wait_closed,
    wait_finished,
    write_pipeline,
)

if TYPE_CHECKING:
    from goldfish.context import ServerContext

NAME = "run_overhead"
FULL_ROUNDS = 5
MARKER_WAIT_SECONDS = 60.0
PIPELINE = """name: overhead
stages:
  - name: touch
    outputs:
      done: {type: file}
"""


@dataclass(frozen=True)
class Shape:
    """How many data files (and bytes per file) a workspace holds beside its pipeline files."""

    label: str
    files: int
    file_bytes: int


BIG = Shape("big", 2000, 100_000)
BIG_QUICK = Shape("big", 200, 100_000)
SMALL = Shape("small", 17, 100)  # + pipeline.yaml, modules/touch.py, configs/touch.yaml = 20 files


@dataclass
class Samples:
    """Per workspace: ms until submit returned, and ms until the stage's first line ran."""

    submitted: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)


def _module(marker: Path) -> str:
    """The stage: stamp the marker first, then write its one output."""
    return (
        f"open({str(marker)!r}, 'w').write(repr(__import__('time').time()))\n"
        "from goldfish.io import get_output_path\n\n"
        "open(get_output_path('done'), 'w').write('ok')\n"
    )


def _data_file(slot: Path, index: int) -> Path:
    return slot / "data" / f"part{index // 100:02d}" / f"blob{index:04d}.bin"


def _build(context: ServerContext, shape: Shape, slot_name: str, marker: Path) -> Path:
    """Create and fill the workspace for ``shape``; save it once. Returns the slot folder."""
    context.workspaces.create(shape.label, f"run overhead, {shape.files} data files")
    slot = Path(context.workspaces.mount(shape.label, slot_name).slot_path)
    write_pipeline(slot, PIPELINE, {"touch": _module(marker)}, {"touch": "{}\n"})
    for index in range(shape.files):
        path = _data_file(slot, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(shape.file_bytes))
    context.versions.save(slot_name, f"{shape.label}: initial files")
    return slot


def _wait_marker(marker: Path) -> float:
    """The wall-clock stamp the stage wrote as its first action."""
    deadline = time.monotonic() + MARKER_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            text = marker.read_text()
        except FileNotFoundError:
            text = ""
        if text:
            return float(text)
        time.sleep(0.001)
    raise RuntimeError(f"the stage did not start within {MARKER_WAIT_SECONDS:.0f} s")


def _round(context: ServerContext, shape: Shape, slot: Path, marker: Path, samples: Samples) -> None:
    """Change one file, submit, time submit and the stage start, then wait for the end (untimed)."""
    changed = _data_file(slot, 0)
    changed.write_bytes(os.urandom(shape.file_bytes))
    marker.unlink(missing_ok=True)
    request = run_request(context, shape.label, use_cache=False)
    wall, start = time.time(), time.perf_counter()
    submission = context.run_service.submit(request)
    samples.submitted.append((time.perf_counter() - start) * 1000)
    samples.started.append((_wait_marker(marker) - wall) * 1000)
    if not submission.version_created:
        raise RuntimeError("the changed file did not make a new version")
    require_completed(wait_finished(context, submission))
    if submission.pipeline_run_id is not None:
        wait_closed(context, submission.pipeline_run_id)


def run(quick: bool) -> Iterator[Figure]:
    """Time submit and stage start on a big and a small workspace."""
    rounds = 1 if quick else FULL_ROUNDS
    big = BIG_QUICK if quick else BIG
    label = f"{big.files}f_{big.files * big.file_bytes // 1_000_000}mb"
    results = {big.label: Samples(), SMALL.label: Samples()}
    with temp_dir(NAME) as workdir:
        context = open_project(workdir / "project", "runoverhead")
        try:
            started = time.perf_counter()
            slots = {
                big.label: _build(context, big, "w1", workdir / "big.marker"),
                SMALL.label: _build(context, SMALL, "w2", workdir / "small.marker"),
            }
            yield Figure(NAME, f"build_{label}_s", time.perf_counter() - started, "s", 1)
            for _ in range(rounds):
                for shape in (big, SMALL):
                    marker = workdir / f"{shape.label}.marker"
                    _round(context, shape, slots[shape.label], marker, results[shape.label])
        finally:
            context.close()
    big_s, small_s = results[big.label], results[SMALL.label]
    yield Figure(NAME, f"submit_returned_ms_{label}", median(big_s.submitted), "ms", rounds)
    yield Figure(NAME, f"process_started_ms_{label}", median(big_s.started), "ms", rounds)
    yield Figure(NAME, "submit_returned_ms_20f", median(small_s.submitted), "ms", rounds)
    yield Figure(NAME, "process_started_ms_20f", median(small_s.started), "ms", rounds)
    yield Figure(
        NAME,
        f"submit_returned_ratio_{label}_vs_20f",
        ratio(median(big_s.submitted), median(small_s.submitted)),
        "ratio",
        rounds,
    )
    yield Figure(
        NAME,
        f"process_started_ratio_{label}_vs_20f",
        ratio(median(big_s.started), median(small_s.started)),
        "ratio",
        rounds,
    )
