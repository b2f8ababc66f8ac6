"""dashboard: the web dashboard's runs page and one run's page, server-side time and bytes, at scale.

The project is ``tool_latency``'s (``build_project`` + ``grow_history``: 50 workspaces x 20
versions, then 100 stage runs, then grown to 10,000 stage runs with 1,000,000 metric points).
After each step the dashboard (``goldfish ui``'s app) is served by uvicorn on loopback and each
page is fetched ``calls`` times after one warm-up fetch: ``/runs`` (the first page of 50 pipeline
runs, newest first) and ``/runs/<prun of run 0>`` (its DAG and its ``train`` stage: 200 log lines of
a 2,000-line log, four metric charts of 2,500 points each drawn from 400, lineage, attempts).
The time is the server's own (the ``Server-Timing`` header the app adds: from the request
reaching the app to the response headers), the bytes are the HTML body.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Figure, median, percentile, ratio, temp_dir
from bench.run_history import History, pipeline_run_id
from bench.tool_latency import LARGE, LARGE_QUICK, RUNS, RUNS_QUICK, Shape, build_project, grow_history

NAME = "dashboard"
TIMING = re.compile(r"app;dur=([0-9.]+)")


@dataclass
class PageSamples:
    """Server-side milliseconds of each fetch of one page, and its size."""

    ms: list[float] = field(default_factory=list)
    bytes: int = 0


def _fetch(url: str) -> tuple[float, int]:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - http on loopback
        body = response.read()
        match = TIMING.search(response.headers.get("server-timing", ""))
    if response.status != 200 or match is None:
        raise RuntimeError(f"{url} answered {response.status} without a Server-Timing header")
    return float(match.group(1)), len(body)


def time_pages(root: Path, pages: dict[str, str], calls: int) -> tuple[dict[str, PageSamples], int]:
    """Serve the dashboard of ``root``, fetch each page ``calls`` times after a warm-up.

    Returns:
        The samples per page, and the pipeline runs the runs page says it lists (a sanity check).
    """
    from goldfish.context import ServerContext
    from goldfish.web.app import build_dashboard
    from goldfish.web.serving import ThreadedServer

    context = ServerContext.open(root)
    try:
        with ThreadedServer(build_dashboard(lambda: context)) as server:
            found: dict[str, PageSamples] = {}
            for label, path in pages.items():
                samples = PageSamples()
                _fetch(server.url + path)
                for _ in range(calls):
                    ms, size = _fetch(server.url + path)
                    samples.ms.append(ms)
                    samples.bytes = size
                found[label] = samples
            with urllib.request.urlopen(server.url + "/api/runs", timeout=60) as response:  # noqa: S310
                total = int(json.loads(response.read())["total"])
            return found, total
    finally:
        context.close()


def _figures(samples: dict[str, PageSamples], suffix: str) -> Iterator[Figure]:
    for label, page in samples.items():
        yield Figure(NAME, f"{label}_p50_ms{suffix}", median(page.ms), "ms", len(page.ms))
        yield Figure(NAME, f"{label}_p99_ms{suffix}", percentile(page.ms, 99), "ms", len(page.ms))
        yield Figure(NAME, f"{label}_kb{suffix}", page.bytes / 1024, "KB", 1)


def run(quick: bool) -> Iterator[Figure]:
    """Build the project, measure with the smaller history, grow it, measure again."""
    shape: Shape = LARGE_QUICK if quick else LARGE
    fewer, more = RUNS_QUICK if quick else RUNS
    calls = 5 if quick else 50
    pages = {"runs_page": "/runs", "run_page": f"/runs/{pipeline_run_id(0)}"}
    with temp_dir(NAME) as workdir:
        root = workdir / "project"
        build_s = build_project(root, shape)
        yield Figure(NAME, f"build_{shape.label}_s", build_s, "s", 1)
        labels = [f"_{h.stage_runs}runs" for h in (fewer, more)]
        seconds, _ = grow_history(root, shape, fewer, 0)
        yield Figure(NAME, f"build{labels[0]}_s", seconds, "s", 1)
        small, total = time_pages(root, pages, calls)
        yield Figure(NAME, f"pipeline_runs{labels[0]}", total, "count", 1)
        yield from _figures(small, labels[0])
        seconds, _ = grow_history(root, shape, more, fewer.pipeline_runs)
        yield Figure(NAME, f"build{labels[1]}_s", seconds, "s", 1)
        big, total = time_pages(root, pages, calls)
        yield Figure(NAME, f"pipeline_runs{labels[1]}", total, "count", 1)
        yield from _figures(big, labels[1])
        for label in pages:
            scaling = ratio(median(big[label].ms), median(small[label].ms))
            yield Figure(NAME, f"{label}_p50_ratio{labels[1]}_vs{labels[0]}", scaling, "ratio", calls)


__all__ = ["History", "run"]
