"""`goldfish demo` end to end: pipelines/demo through the MCP tools on the process backend.

The demo registers a generated dataset, runs preprocess -> train -> evaluate (numpy MLP), runs
again with a lower learning rate and once more unchanged, finalizing each run before the next (the
finalization gate is on). The checks read the project back through a fresh MCP session, as an
agent would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
import pytest
from mcp import Client

import goldfish
from goldfish.demo import WORKSPACE, run_demo
from goldfish.server.app import server_for
from tests.conftest import call

STAGES = ["preprocess", "train", "evaluate"]


async def _pipeline_runs(client: Client) -> list[dict[str, dict[str, Any]]]:
    """Each pipeline run of the demo workspace (oldest first) as {stage: stage run}."""
    listed = await call(client, "list_runs", workspace=WORKSPACE, limit=50)
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for stage_run in sorted(listed["runs"], key=lambda r: (r["created_at"], r["stage_run_id"])):
        by_run.setdefault(stage_run["pipeline_run_id"], {})[stage_run["stage"]] = stage_run
    return list(by_run.values())


async def _last(client: Client, run_id: str, name: str) -> dict[str, Any]:
    metrics = await call(client, "get_metrics", run_id=run_id, names=[name])
    assert [m["name"] for m in metrics["metrics"]] == [name], metrics
    series: dict[str, Any] = metrics["metrics"][0]
    return series


async def _check_project(root: Path) -> None:
    async with Client(server_for(root)) as client:
        runs = await _pipeline_runs(client)
        assert len(runs) == 3
        for run in runs:
            assert sorted(run) == sorted(STAGES)
            assert {s["status"] for s in run.values()} == {"completed"}, run
        first, second, rerun = runs

        # the first run executed every stage and met the results spec
        assert not any(s["cache_hit"] for s in first.values())
        val_acc = await _last(client, first["evaluate"]["stage_run_id"], "val_acc")
        assert val_acc["last"] >= 0.8
        loss = await _last(client, first["train"]["stage_run_id"], "loss")
        assert loss["count"] == 30 and loss["last"] < loss["max"]

        # the evaluate report is a stored output and agrees with the logged metric
        inspected = await call(
            client, "inspect_run", run_id=first["evaluate"]["stage_run_id"], include=["manifest"]
        )
        outputs = {o["signal"]: o for o in inspected["inspect"]["manifest"]["outputs"]}
        report_file = Path(unquote(urlparse(outputs["report"]["uri"]).path)) / "report.json"
        assert report_file.is_file() and (root / ".goldfish" / "storage") in report_file.parents
        report = json.loads(report_file.read_text(encoding="utf-8"))
        assert report["accuracy"] == pytest.approx(val_acc["last"])
        assert sum(map(sum, report["confusion_matrix"])) == report["rows"] == 400

        # the lower learning rate made a new version; preprocess was reused
        assert second["train"]["version"] != first["train"]["version"]
        assert second["preprocess"]["cache_hit"] and not second["train"]["cache_hit"]

        # the unchanged re-run is all cache hits on the same version
        assert all(s["cache_hit"] and s["cached_from"] for s in rerun.values())
        assert {s["version"] for s in rerun.values()} == {second["train"]["version"]}
        assert rerun["train"]["cached_from"] == second["train"]["stage_run_id"]

        # each run was finalized with the val_acc its evaluate stage logged, judged by the spec
        await _check_finalizations(client, runs)


async def _check_finalizations(client: Client, runs: list[dict[str, dict[str, Any]]]) -> None:
    assert (await call(client, "list_unfinalized_runs", workspace=WORKSPACE))["runs"] == []
    listed = await call(client, "list_history", workspace=WORKSPACE, record_type="run", desc=False)
    records = listed["records"]
    assert [r["pipeline_run_id"] for r in records] == [run["evaluate"]["pipeline_run_id"] for run in runs]
    for record, run in zip(records, runs, strict=True):
        evaluate = run["evaluate"]
        val_acc = await _last(client, evaluate["cached_from"] or evaluate["stage_run_id"], "val_acc")
        assert (record["primary_metric"], record["value"]) == ("val_acc", val_acc["last"])
        expected = "success" if val_acc["last"] >= 0.95 else "partial" if val_acc["last"] >= 0.8 else "miss"
        assert record["ml_outcome"] == expected
    context = (await call(client, "get_experiment_context", workspace=WORKSPACE))["context"]
    assert context["best"]["value"] == max(r["value"] for r in records)
    assert [p["value"] for p in context["recent_trend"]] == [r["value"] for r in records]


def test_demo_runs_the_pipeline_end_to_end_and_reruns_from_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_demo(tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "goal met" in out and "where to look next" in out
    assert out.count("finalize_run: val_acc = ") == 3
    assert "best val_acc (maximize)" in out and "recent trend: " in out
    anyio.run(_check_project, tmp_path / "project")


def test_demo_without_the_pipeline_folder_fails_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(goldfish, "__file__", str(tmp_path / "site" / "goldfish" / "__init__.py"))
    monkeypatch.chdir(tmp_path)
    assert run_demo(tmp_path / "demo") == 1
    assert "pipelines/demo" in capsys.readouterr().out
    assert not (tmp_path / "demo" / "project").exists()
