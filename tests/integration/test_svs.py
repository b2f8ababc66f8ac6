"""SVS through real MCP sessions on the process backend: statistics, checks rules, findings views.

The stage writes real npy/csv outputs; the statistics are computed by the stage wrapper in the
stage's own environment; rules are judged when the stage is collected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    by_stage,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("reaping_stray_processes")]

PIPELINE = """\
stages:
  - name: make
    outputs:
      features:
        type: npy
        checks:
          nan_ratio: {max: 0, mode: warn}
          std: {min: 1.0e-6}
      labels:
        type: csv
        checks:
          entropy: {min: 0.5, columns: [label]}
          row_count: {min: 10}
      model:
        type: directory
"""

MODULE = """\
import csv
import numpy as np
from goldfish.io import get_config, get_output_path, save_output

cfg = get_config()
rng = np.random.default_rng(0)
features = rng.normal(size=(200, 3)).astype(np.float32)
features[:20, 0] = np.nan
save_output("features", features)
classes = ["a"] if cfg.get("collapse") else ["a", "b"]
rows = [{"label": classes[i % len(classes)], "x": i / 10} for i in range(100)]
save_output("labels", rows)
folder = get_output_path("model")
(folder / "weights.bin").write_bytes(b"0" * 1000)
"""


def _write(slot: Path, collapse: bool) -> None:
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "make.py").write_text(MODULE, encoding="utf-8")
    (slot / "configs").mkdir(exist_ok=True)
    (slot / "configs" / "make.yaml").write_text(f"collapse: {str(collapse).lower()}\n", encoding="utf-8")


async def _run(client: Client) -> dict[str, Any]:
    submission = await start_run(client)
    info = await wait_for_pipeline(client, submission["pipeline_run_id"])
    run: dict[str, Any] = by_stage(info["stages"])["make"]
    return run


async def test_stage_with_collapsed_label_fails_with_svs_violation_naming_rule_column_and_value(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "svs_collapse")
    _write(slot, collapse=True)
    run = await _run(legacy_session)
    assert run["status"] == "failed" and run["failure_kind"] == "svs_violation", run
    assert "labels.label: entropy is 0" in run["error"] and "min 0.5" in run["error"], run["error"]
    found = (await ok(legacy_session, "get_svs_findings", run_id=run["stage_run_id"]))["svs"]
    blocking = found["outputs"]["labels"]["findings"]
    assert blocking == [
        {
            "signal": "labels",
            "rule": "entropy",
            "column": "label",
            "mode": "block",
            "bound": {"min": 0.5},
            "observed": 0.0,
            "message": blocking[0]["message"],
        }
    ]
    assert found["summary"] == {"block": 1, "warn": 1}


async def test_stage_with_warnings_completes_and_shows_stats_and_findings_everywhere(
    legacy_session: Client, project_root: Path
) -> None:
    slot = await workspace_in_slot(legacy_session, "svs_warn")
    _write(slot, collapse=False)
    run = await _run(legacy_session)
    assert run["status"] == "completed", run
    inspected = (await ok(legacy_session, "inspect_run", run_id=run["stage_run_id"], include=["svs"]))[
        "inspect"
    ]
    outputs = inspected["svs"]["outputs"]
    features = outputs["features"]["stats"]
    assert features["count"] == 600 and features["shape"] == [200, 3] and features["dtype"] == "float32"
    assert features["nan_ratio"] == pytest.approx(20 / 600)
    assert outputs["labels"]["stats"]["rows"] == 100
    assert outputs["labels"]["stats"]["columns"]["label"]["entropy"] == pytest.approx(1.0)
    assert outputs["model"]["stats"] == {"type": "directory", "files": 1, "bytes": 1000}
    [warning] = outputs["features"]["findings"]
    assert warning["rule"] == "nan_ratio" and warning["mode"] == "warn"
    assert warning["observed"] == pytest.approx(20 / 600)
    assert inspected["svs"]["review"]["reviewed_by"] in {"static", "none"}
    alerts = (await ok(legacy_session, "dashboard"))["dashboard"]["alerts"]
    assert any(a["kind"] == "svs_warn" and run["stage_run_id"] in a["message"] for a in alerts), alerts
    state_md = (project_root / "STATE.md").read_text(encoding="utf-8")
    assert "## Validation findings" in state_md and run["stage_run_id"] in state_md
    whole = (await ok(legacy_session, "get_svs_findings", run_id=run["pipeline_run_id"]))["svs"]
    assert [stage["stage_run_id"] for stage in whole["stages"]] == [run["stage_run_id"]]


async def test_unknown_check_name_is_refused_before_anything_runs(legacy_session: Client) -> None:
    slot = await workspace_in_slot(legacy_session, "svs_bad_rule")
    _write(slot, collapse=False)
    text = PIPELINE.replace("nan_ratio: {max: 0, mode: warn}", "nan_ration: {max: 0}")
    (slot / "pipeline.yaml").write_text(text, encoding="utf-8")
    error = await fail(
        legacy_session, "run", "PIPELINE_INVALID", workspace="w1", reason=LONG_REASON, dry_run=True
    )
    assert "nan_ration" in str(error), error


async def test_get_svs_findings_of_an_unknown_run_says_so(legacy_session: Client) -> None:
    error = await fail(legacy_session, "get_svs_findings", "RUN_NOT_FOUND", run_id="stage-000000000000")
    assert "stage-000000000000" in error["message"]


async def test_broken_output_contract_fails_the_stage_and_shows_as_a_schema_finding(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "svs_contract")
    _write(slot, collapse=False)
    text = PIPELINE.replace("        type: npy\n", "        type: npy\n        schema: {dtype: float64}\n")
    (slot / "pipeline.yaml").write_text(text, encoding="utf-8")
    run = await _run(legacy_session)
    assert (run["status"], run["failure_kind"]) == ("failed", "contract_violation"), run
    found = (await ok(legacy_session, "get_svs_findings", run_id=run["stage_run_id"]))["svs"]
    schema = [f for f in found["outputs"]["features"]["findings"] if f["rule"] == "schema"]
    assert schema == [
        {
            "signal": "features",
            "rule": "schema",
            "column": None,
            "mode": "block",
            "bound": {},
            "observed": None,
            "message": "features: schema: dtype float32 is not float64",
        }
    ]
    assert "dtype float32 is not float64" in found["contract_violation"]
