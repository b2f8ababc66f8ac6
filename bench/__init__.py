"""Goldfish benchmarks: ``python -m bench [NAME ...] [--quick]`` prints one JSON line per figure."""

from __future__ import annotations

from bench.harness import BenchFn

BENCHMARKS: dict[str, str] = {
    "mcp_cold_start": "bench.mcp_cold_start",
    "tool_latency": "bench.tool_latency",
    "sync_commit": "bench.sync_commit",
    "run_overhead": "bench.run_overhead",
    "metrics_ingest": "bench.metrics_ingest",
    "cache_hit": "bench.cache_hit",
    "vs_dvc": "bench.vs_dvc",
    "warm_pool": "bench.warm_pool",
    "tools_list": "bench.tools_list",
    "dashboard": "bench.dashboard",
    "backup": "bench.backup",
    "output_stats": "bench.output_stats",
    "pre_run_review": "bench.pre_run_review",
}


def load(name: str) -> BenchFn:
    """The ``run(quick)`` function of the benchmark called ``name`` (imported on demand).

    Raises:
        KeyError: when no benchmark has that name.
    """
    import importlib

    module = importlib.import_module(BENCHMARKS[name])
    run: BenchFn = module.run
    return run
