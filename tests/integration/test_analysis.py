"""compare_runs and plot_metrics through real MCP sessions, and `goldfish plot` as a subprocess.

Two runs of a two-stage pipeline (prep -> train) differ in the stage configs, in the train
module's code and, through prep's config, in the data train reads; both log ``loss``. The tests
read the differences back with compare_runs and draw the loss curves with plot_metrics.
"""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import ImageContent

from goldfish.context import ServerContext
from tests.conftest import LONG_REASON, structured
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    TWO_STAGES,
    by_stage,
    fail,
    ok,
    workspace_in_slot,
    write_configs,
    write_pipeline,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNKNOWN_STAGE_RUN = "stage-000000000000"
UNKNOWN_RECORD = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@dataclass(frozen=True)
class TwoRuns:
    """Ids of the two finished runs: pipeline runs and their stage runs by stage name."""

    prun_a: str
    prun_b: str
    a: dict[str, str]
    b: dict[str, str]


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


async def finished_run(client: Client) -> tuple[str, dict[str, str]]:
    """Run the slot's pipeline to the end; return the pipeline run id and stage run ids by stage."""
    result = await ok(client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC, wait=True)
    run = result["run"]
    assert run["state"] == "completed", run
    stages = by_stage(run["stages"])
    return run["pipeline_run_id"], {name: stage["stage_run_id"] for name, stage in stages.items()}


async def two_runs(client: Client) -> TwoRuns:
    """Run once, then change configs, the train module and (through prep) train's input; run again."""
    slot = await workspace_in_slot(client, "cmp")
    write_pipeline(
        slot,
        TWO_STAGES,
        {"prep": {"value": 1}, "train": {"metrics": 5, "lr": 0.1, "optimizer": {"name": "sgd"}}},
    )
    prun_a, a = await finished_run(client)
    write_configs(
        slot,
        {
            "prep": {"value": 2},
            "train": {"metrics": 8, "lr": 0.01, "optimizer": {"name": "sgd", "momentum": 0.9}},
        },
    )
    train = slot / "modules" / "train.py"
    train.write_text(train.read_text() + "# second attempt: smaller learning rate\n")
    prun_b, b = await finished_run(client)
    return TwoRuns(prun_a, prun_b, a, b)


def finalize(root: Path, ref: str, value: float, outcome: str) -> None:
    """Record a run's outcome through the records service (as finalize_run does)."""
    context = ServerContext.open(root)
    try:
        results = {
            "primary_metric": "loss",
            "direction": "minimize",
            "value": value,
            "dataset_split": "val",
            "ml_outcome": outcome,
            "notes": "recorded by the analysis test",
            "secondary": {"accuracy": 0.5 if outcome == "partial" else 0.75},
        }
        context.records.finalize(ref, results, None)
    finally:
        context.close()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert zlib.crc32(kind + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return int(width), int(height)


def by_name(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


# -- compare_runs ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_compare_runs_when_config_code_and_upstream_data_changed_reports_each_difference(
    legacy_session: Client, project_root: Path
) -> None:
    runs = await two_runs(legacy_session)
    finalize(project_root, runs.prun_a, 0.2, "partial")
    finalize(project_root, runs.prun_b, 0.125, "success")

    result = await ok(legacy_session, "compare_runs", run_a=runs.a["train"], run_b=runs.b["train"])

    comparison = result["comparison"]
    assert comparison["mode"] == "stage"
    assert (comparison["pipeline_run_a"], comparison["pipeline_run_b"]) == (runs.prun_a, runs.prun_b)
    [train] = comparison["stages"]
    assert (train["run_a"], train["run_b"]) == (runs.a["train"], runs.b["train"])
    changes = by_name(train["config"]["changes"], "path")
    assert changes["lr"] == {"path": "lr", "change": "changed", "a": 0.1, "b": 0.01}
    assert changes["metrics"] == {"path": "metrics", "change": "changed", "a": 5, "b": 8}
    assert changes["optimizer.momentum"] == {
        "path": "optimizer.momentum",
        "change": "added",
        "a": None,
        "b": 0.9,
    }
    assert "optimizer.name" not in changes
    code = comparison["code"]
    assert code["version_a"] == "cmp@v1" and code["version_b"] == "cmp@v2"
    files = by_name(code["files"], "path")
    assert files["modules/train.py"]["status"] == "modified"
    assert files["modules/train.py"]["lines_added"] == 1
    assert files["modules/train.py"]["lines_removed"] == 0
    assert "modules/prep.py" not in files
    assert code["files_changed"] == len(code["files"]) >= 3  # the module and both stage configs
    loss = by_name(train["metrics"], "name")["loss"]
    assert (loss["a"]["count"], loss["b"]["count"]) == (5, 8)
    assert loss["a"]["last"] == pytest.approx(1 / 5) and loss["b"]["last"] == pytest.approx(1 / 8)
    assert loss["delta_last"] == pytest.approx(1 / 8 - 1 / 5)
    assert loss["delta_min"] == pytest.approx(1 / 8 - 1 / 5)
    assert loss["delta_max"] == pytest.approx(0.0)
    [features] = train["inputs"]
    assert features["signal"] == "features"
    assert features["content_hash_a"] != features["content_hash_b"]
    assert features["content_differs"] is True and features["same"] is False
    assert (features["producer_run_a"], features["producer_run_b"]) == (runs.a["prep"], runs.b["prep"])
    assert train["inputs_differing"] == ["features"]
    results = comparison["results"]
    assert results["a"]["value"] == 0.2 and results["b"]["value"] == 0.125
    assert results["delta"] == pytest.approx(-0.075)
    assert results["b_better"] is True and results["outcome_changed"] is True
    assert results["secondary_deltas"] == {"accuracy": pytest.approx(0.25)}
    assert any(line.startswith("train: config lr: 0.1 -> 0.01") for line in comparison["summary"])


@pytest.mark.anyio
async def test_compare_runs_when_given_pipeline_runs_compares_each_common_stage(
    legacy_session: Client,
) -> None:
    runs = await two_runs(legacy_session)

    result = await ok(legacy_session, "compare_runs", run_a=runs.prun_a, run_b=runs.prun_b)

    comparison = result["comparison"]
    assert comparison["mode"] == "pipeline"
    stages = by_name(comparison["stages"], "stage_a")
    assert list(stages) == ["prep", "train"]
    assert stages["prep"]["config"]["changes"] == [{"path": "value", "change": "changed", "a": 1, "b": 2}]
    assert stages["prep"]["inputs"] == []
    assert stages["train"]["inputs_differing"] == ["features"]
    assert comparison["only_in_a"] == [] and comparison["only_in_b"] == []
    assert comparison["results"]["a"]["finalized"] is False
    assert comparison["results"]["delta"] is None
    # A stage run against a whole run is compared with that run's stage of the same name.
    mixed = await ok(legacy_session, "compare_runs", run_a=runs.a["prep"], run_b=runs.prun_b)
    [prep] = mixed["comparison"]["stages"]
    assert (prep["run_a"], prep["run_b"]) == (runs.a["prep"], runs.b["prep"])
    # The same run on both sides differs in nothing.
    same = await ok(legacy_session, "compare_runs", run_a=runs.a["train"], run_b=runs.a["train"])
    [train] = same["comparison"]["stages"]
    assert same["comparison"]["code"]["same_version"] is True
    assert train["config"]["changes"] == [] and train["inputs_differing"] == []


@pytest.mark.anyio
async def test_compare_runs_when_a_run_is_unknown_returns_a_structured_error(client: Client) -> None:
    await fail(client, "compare_runs", "RUN_NOT_FOUND", run_a=UNKNOWN_STAGE_RUN, run_b=UNKNOWN_STAGE_RUN)
    await fail(client, "compare_runs", "RUN_NOT_FOUND", run_a="prun-000000000000", run_b=UNKNOWN_STAGE_RUN)
    await fail(client, "compare_runs", "RECORD_NOT_FOUND", run_a=UNKNOWN_RECORD, run_b=UNKNOWN_STAGE_RUN)
    malformed = await fail(client, "compare_runs", "INVALID_ARGUMENT", run_a="x", run_b=UNKNOWN_STAGE_RUN)
    assert malformed["details"]["field"] == "run_a"
    await fail(client, "compare_runs", "INVALID_ARGUMENT", run_a="", run_b=UNKNOWN_STAGE_RUN)


# -- plot_metrics ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_plot_metrics_when_two_runs_logged_loss_returns_a_png_and_the_numbers_drawn(
    legacy_session: Client, project_root: Path, tmp_path: Path
) -> None:
    runs = await two_runs(legacy_session)
    ids = [runs.a["train"], runs.b["train"]]

    raw = await legacy_session.call_tool(
        "plot_metrics", {"run_ids": ids, "metric": "loss", "include_points": True}
    )

    payload = structured(raw)
    assert payload["success"] is True
    [image] = [block for block in raw.content if isinstance(block, ImageContent)]
    assert image.mime_type == "image/png"
    width, height = png_size(base64.b64decode(image.data))
    plot = payload["plot"]
    assert (width, height) == (plot["width"], plot["height"]) and width > 0 and height > 0
    assert plot["metric"] == "loss" and plot["x_axis"] == "step" and plot["missing"] == []
    for run_id, drawn in zip(ids, plot["runs"], strict=True):
        metrics = await ok(legacy_session, "get_metrics", run_id=run_id, names=["loss"])
        [loss] = metrics["metrics"]
        assert drawn["run_id"] == run_id
        assert (drawn["count"], drawn["points_drawn"]) == (loss["count"], loss["count"])
        assert (drawn["last"], drawn["min"], drawn["max"]) == (loss["last"], loss["min"], loss["max"])
        assert drawn["last_step"] == loss["last_step"]
        assert drawn["points"] == loss["series"]
    # Without include_points only the aggregates come back.
    summary = await ok(legacy_session, "plot_metrics", run_ids=ids, metric="loss")
    assert [run["points"] for run in summary["plot"]["runs"]] == [None, None]

    error = await fail(legacy_session, "plot_metrics", "METRIC_NOT_FOUND", run_ids=ids, metric="accuracy")
    assert error["details"]["available"] == ["loss"]
    await fail(
        legacy_session, "plot_metrics", "RUN_NOT_FOUND", run_ids=[*ids, UNKNOWN_STAGE_RUN], metric="loss"
    )
    pipeline = await fail(
        legacy_session, "plot_metrics", "INVALID_ARGUMENT", run_ids=[runs.prun_a], metric="loss"
    )
    assert pipeline["details"]["stage_run_ids"]["train"] == runs.a["train"]

    await cli_plot_writes_png(project_root, ids, tmp_path)


async def cli_plot_writes_png(root: Path, ids: list[str], tmp_path: Path) -> None:
    """`goldfish plot RUN RUN --metric loss -o FILE` writes the same kind of PNG; errors exit 2."""
    target = tmp_path / "loss.png"
    command = [sys.executable, "-m", "goldfish.cli", "plot", *ids, "--metric", "loss"]
    done = await anyio.run_process([*command, "-o", str(target), "--project", str(root)], check=False)
    assert done.returncode == 0, done.stderr.decode()
    width, height = png_size(target.read_bytes())
    assert width > 0 and height > 0
    assert f"wrote {target}" in done.stdout.decode()

    unknown = [*command[:4], UNKNOWN_STAGE_RUN, "--metric", "loss", "-o", str(tmp_path / "x.png")]
    missing = await anyio.run_process([*unknown, "--project", str(root)], check=False)
    assert missing.returncode == 2
    assert "RUN_NOT_FOUND" in missing.stderr.decode()
    assert not (tmp_path / "x.png").exists()


@pytest.mark.anyio
@pytest.mark.parametrize("count", [0, 9])
async def test_plot_metrics_when_given_no_runs_or_more_than_eight_is_refused(
    client: Client, count: int
) -> None:
    ids = [f"stage-{i:012x}" for i in range(count)]
    error = await fail(client, "plot_metrics", "INVALID_ARGUMENT", run_ids=ids, metric="loss")
    assert error["details"]["field"] == "run_ids"


def test_render_png_when_matplotlib_is_missing_raises_plot_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from goldfish.errors import GoldfishError
    from goldfish.memory.plots import render_png

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(GoldfishError) as caught:
        render_png("loss", "step", [("a", [0, 1], [1.0, 0.5])])
    assert caught.value.code == "PLOT_UNAVAILABLE"
    assert "goldfish-mcp[plot]" in caught.value.remedy
