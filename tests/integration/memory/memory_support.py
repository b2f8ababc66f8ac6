"""The scored pipeline of the experiment-memory tests and the tool calls they repeat.

Every run in these tests is a real pipeline run of a two-stage pipeline (``prep`` -> ``train``) whose
``train`` stage logs a metric ``score`` through ``goldfish.io.log_metric``: first 0.1, then the
value of ``score`` in ``configs/train.yaml``. Waits are bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mcp import Client

from tests.integration.pipeline_fixtures import (
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
WORKSPACE = "exp"
SPEC: dict[str, Any] = {
    "primary_metric": "score",
    "direction": "maximize",
    "min_value": 0.7,
    "goal_value": 0.85,
    "dataset_split": "val",
    "tolerance": 0.01,
}
STORED_SPEC = SPEC | {"secondary_metrics": []}  # the spec as validated and stored

SCORED_PIPELINE = """\
name: scored
stages:
  - name: prep
    outputs:
      data: {type: file}
  - name: train
    inputs:
      data: {type: file, from_stage: prep}
    outputs:
      model: {type: file}
"""

PREP = """\
import tempfile
from pathlib import Path

from goldfish.io import get_config, save_output

path = Path(tempfile.mkdtemp()) / "data.txt"
path.write_text(f"rows={get_config().get('rows', 10)}")
save_output("data", path)
"""

TRAIN = """\
import tempfile
import time
from pathlib import Path

from goldfish.io import get_config, log_metric, save_output, should_stop

cfg = get_config()
deadline = time.monotonic() + float(cfg.get("sleep", 0))
while time.monotonic() < deadline and not should_stop():
    time.sleep(0.05)
log_metric("score", 0.1, step=0)
log_metric("score", float(cfg["score"]), step=1)
path = Path(tempfile.mkdtemp()) / "model.txt"
path.write_text(f"score={cfg['score']}")
save_output("model", path)
"""


async def scored_workspace(client: Client, name: str = WORKSPACE) -> Path:
    """Create and mount ``name`` in w1 with the scored pipeline; return the slot."""
    slot = await workspace_in_slot(client, name)
    (slot / "pipeline.yaml").write_text(SCORED_PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir()
    (slot / "modules" / "prep.py").write_text(PREP, encoding="utf-8")
    (slot / "modules" / "train.py").write_text(TRAIN, encoding="utf-8")
    return slot


def set_score(slot: Path, score: float, **extra: Any) -> None:
    """Write configs/train.yaml: the score train logs last (a new version on the next run)."""
    write_configs(slot, {"train": {"score": score, **extra}})


async def run_scored(client: Client, slot: Path, score: float, **arguments: Any) -> dict[str, Any]:
    """Set the score, run the pipeline to its end and return the run's answer (with record_id)."""
    set_score(slot, score)
    arguments.setdefault("results_spec", SPEC)
    submission = await start_run(client, **arguments)
    final = await wait_for_pipeline(client, submission["pipeline_run_id"])
    assert final["state"] == "completed", final
    return submission


async def finalize(
    client: Client, ref: str, value: float | None, outcome: str, **arguments: Any
) -> dict[str, Any]:
    """finalize_run with the usual results; return the finalize answer."""
    results = {
        "primary_metric": "score",
        "direction": "maximize",
        "value": value,
        "dataset_split": "val",
        "ml_outcome": outcome,
        "notes": "recorded by the test",
    }
    result = await ok(client, "finalize_run", record_or_run_id=ref, results=results, **arguments)
    found: dict[str, Any] = result["finalize"]
    return found


async def history(client: Client, **arguments: Any) -> dict[str, Any]:
    arguments.setdefault("workspace", WORKSPACE)
    return await ok(client, "list_history", **arguments)


async def record_of(client: Client, ref: str, **arguments: Any) -> dict[str, Any]:
    result = await ok(client, "inspect_record", ref=ref, **arguments)
    found: dict[str, Any] = result["inspect"]
    return found


async def pending(client: Client, **arguments: Any) -> list[dict[str, Any]]:
    result = await ok(client, "list_unfinalized_runs", **arguments)
    runs: list[dict[str, Any]] = result["runs"]
    assert result["total"] == len(runs)
    return runs


def values(records: list[dict[str, Any]]) -> list[float | None]:
    return [r["value"] for r in records]
