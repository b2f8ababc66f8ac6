"""cache_hit: re-run of an unchanged 3-stage pipeline, every stage a cache hit.

The demo-like pipeline (``prepare`` → ``train`` → ``evaluate``, tiny numpy stages) runs once for
real on the process backend (untimed). Each timed round then calls
``context.run_service.submit(request)`` (``use_cache=True``) on the unchanged workspace and, if
the submission is not finished yet, waits for it; with every stage a cache hit ``submit`` settles
the run inline and returns finished. The number of cache hits is reported, not asserted.

The same is measured for the same pipeline in a workspace that also holds 2,000 data files /
200 MB (200 files / 20 MB with ``--quick``), which the stages never read: a cache hit should
not depend on what else the workspace holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.harness import Figure, median, temp_dir
from bench.pipelines import (
    DEMO_CONFIGS,
    DEMO_MODULES,
    DEMO_PIPELINE,
    cache_hits,
    new_workspace,
    open_project,
    require_completed,
    run_request,
    wait_closed,
    wait_finished,
    write_pipeline,
)

if TYPE_CHECKING:
    from goldfish.context import ServerContext

NAME = "cache_hit"
STAGES = 3
FILE_BYTES = 100_000


@dataclass(frozen=True)
class Case:
    """A workspace to re-run in: its data files beside the pipeline, and how many timed rounds."""

    label: str
    data_files: int
    rounds: int


@dataclass
class Reruns:
    """What the timed re-runs of one case gave."""

    total_ms: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)
    finished_inline: int = 0


def _cases(quick: bool) -> list[Case]:
    if quick:
        return [Case("", 0, 2), Case("_data_20mb", 200, 1)]
    return [Case("", 0, 10), Case("_data_200mb", 2000, 3)]


def _prepare(context: ServerContext, workspace: str, slot_name: str, data_files: int) -> None:
    """The demo pipeline plus ``data_files`` unread data files, run once for real."""
    slot = new_workspace(context, workspace, slot_name)
    write_pipeline(slot, DEMO_PIPELINE, DEMO_MODULES, DEMO_CONFIGS)
    for index in range(data_files):
        path = slot / "data" / f"part{index // 100:02d}" / f"blob{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(FILE_BYTES))
    first = wait_finished(
        context, context.run_service.submit(run_request(context, workspace, use_cache=True))
    )
    require_completed(first)
    if first.pipeline_run_id is not None:
        wait_closed(context, first.pipeline_run_id)


def _rerun(context: ServerContext, workspace: str, result: Reruns) -> None:
    request = run_request(context, workspace, use_cache=True)
    start = time.perf_counter()
    submission = context.run_service.submit(request)
    result.finished_inline += int(submission.finished)
    done = wait_finished(context, submission)
    result.total_ms.append((time.perf_counter() - start) * 1000)
    require_completed(done)
    result.hits.append(cache_hits(done))
    if done.pipeline_run_id is not None:
        wait_closed(context, done.pipeline_run_id)


def _figures(case: Case, result: Reruns) -> Iterator[Figure]:
    n = case.rounds
    yield Figure(NAME, f"rerun_total_ms{case.label}", median(result.total_ms), "ms", n)
    yield Figure(NAME, f"cache_hits_min{case.label}", min(result.hits), "count", n)
    yield Figure(NAME, f"every_stage_cache_hit{case.label}", min(result.hits) == STAGES, "bool", n)
    yield Figure(NAME, f"finished_when_submit_returned{case.label}", result.finished_inline == n, "bool", n)


def run(quick: bool) -> Iterator[Figure]:
    """Time unchanged re-runs after one real run, in a bare and in a data-heavy workspace."""
    with temp_dir(NAME) as workdir:
        context = open_project(workdir / "project", "cachehit")
        try:
            yield Figure(NAME, "stages", STAGES, "count", 1)
            for index, case in enumerate(_cases(quick)):
                workspace = f"demo{index}"
                start = time.perf_counter()
                _prepare(context, workspace, f"w{index + 1}", case.data_files)
                yield Figure(NAME, f"first_run_s{case.label}", time.perf_counter() - start, "s", 1)
                result = Reruns()
                for _ in range(case.rounds):
                    _rerun(context, workspace, result)
                yield from _figures(case, result)
        finally:
            context.close()
