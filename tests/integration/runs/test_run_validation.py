"""Runs refused before anything executes: invalid pipelines (file, line, stage) and unregistered or
misplaced dataset sources.

Stages are real processes started by the detached pipeline driver; waits are bounded polls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    fail,
    ok,
    workspace_in_slot,
    write_pipeline,
)
from tests.integration.runs.runs_support import (
    HEX64,
    manifest,
    run_to_end,
    version_names,
)

CYCLE = """\
stages:
  - name: prep
    inputs:
      back: {type: npy, from_stage: train, signal: weights}
    outputs:
      features: {type: npy}
  - name: train
    inputs:
      features: {type: npy, from_stage: prep}
    outputs:
      weights: {type: npy}
"""

pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


def _unknown_key(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("  - name: train\n", "  - name: train\n    modul: train\n"), encoding="utf-8"
    )


def _cycle(slot: Path) -> None:
    write_pipeline(slot, CYCLE)


def _unknown_from_stage(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("from_stage: train", "from_stage: trian"), encoding="utf-8"
    )


def _type_mismatch(slot: Path) -> None:
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace("features: {type: npy, from_stage: prep}", "features: {type: csv, from_stage: prep}"),
        encoding="utf-8",
    )


def _missing_module(slot: Path) -> None:
    write_pipeline(slot)
    (slot / "modules" / "evaluate.py").unlink()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("breaks", "stage", "line", "expected"),
    [
        (_unknown_key, "train", 7, "unknown key 'modul' (did you mean 'module'?)"),
        (_cycle, "prep", None, "cycle: "),
        (_unknown_from_stage, "evaluate", 13, "from_stage 'trian' does not exist (did you mean 'train'?)"),
        (_type_mismatch, "train", 8, "expects csv but 'prep.features' is npy"),
        (_missing_module, "evaluate", 11, "module file modules/evaluate.py does not exist"),
    ],
    ids=["unknown-key", "cycle", "unknown-from-stage", "type-mismatch", "missing-module"],
)
async def test_run_when_pipeline_is_invalid_reports_file_line_stage_and_saves_no_version(
    legacy_session: Client, breaks: Callable[[Path], None], stage: str, line: int | None, expected: str
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    breaks(slot)

    error = await fail(
        legacy_session,
        "run",
        "PIPELINE_INVALID",
        workspace="w1",
        reason=LONG_REASON,
        results_spec=RESULTS_SPEC,
    )

    assert expected in error["message"]
    problems = error["details"]["problems"]
    matching = [p for p in problems if expected in p["message"]]
    assert matching, problems
    problem = matching[0]
    assert problem["path"] == "pipeline.yaml"
    assert problem["stage"] == stage
    assert isinstance(problem["line"], int)
    if line is not None:
        assert problem["line"] == line
    if breaks is _cycle:
        assert "prep" in problem["message"]
        assert "train" in problem["message"]
    assert await version_names(legacy_session, "alpha") == []
    assert (await ok(legacy_session, "list_runs"))["total"] == 0


@pytest.mark.anyio
async def test_run_when_a_dataset_input_is_not_registered_is_invalid_and_names_register_source(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)
    text = (slot / "pipeline.yaml").read_text(encoding="utf-8")
    (slot / "pipeline.yaml").write_text(
        text.replace(
            "  - name: prep\n", "  - name: prep\n    inputs:\n      raw: {type: dataset, dataset: iris_v1}\n"
        ),
        encoding="utf-8",
    )

    error = await fail(
        legacy_session,
        "run",
        "PIPELINE_INVALID",
        workspace="w1",
        reason=LONG_REASON,
        results_spec=RESULTS_SPEC,
    )

    assert "register_source" in error["message"]
    (problem,) = error["details"]["problems"]
    assert (problem["stage"], problem["path"]) == ("prep", "pipeline.yaml")
    assert "iris_v1" in problem["message"]
    assert await version_names(legacy_session, "alpha") == []


# -- sources ---------------------------------------------------------------------------------

WITH_DATASET = """\
stages:
  - name: prep
    inputs:
      raw: {type: dataset, dataset: iris_v1}
    outputs:
      features: {type: npy}
"""


@pytest.mark.anyio
async def test_register_source_under_data_then_a_run_consumes_it_with_its_hash(
    legacy_session: Client, project_root: Path
) -> None:
    data = project_root / "data" / "iris.csv"
    data.parent.mkdir(exist_ok=True)
    data.write_text("sepal,petal\n1.0,2.0\n3.0,4.0\n", encoding="utf-8")
    registered = await ok(
        legacy_session,
        "register_source",
        name="iris_v1",
        uri="data/iris.csv",
        description="a tiny iris sample",
        reason=LONG_REASON,
    )
    source = registered["source"]
    assert HEX64.fullmatch(source["content_hash"])
    assert source["size_bytes"] == data.stat().st_size
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, WITH_DATASET)

    final = await run_to_end(legacy_session)

    assert final["state"] == "completed"
    prep_id = final["stages"][0]["stage_run_id"]
    (raw,) = (await manifest(legacy_session, prep_id))["inputs"]
    assert (raw["signal"], raw["source_name"]) == ("raw", "iris_v1")
    assert raw["content_hash"] == source["content_hash"]
    upstream = await ok(legacy_session, "get_lineage", run_id=prep_id, direction="upstream")
    (edge,) = upstream["edges"]
    assert (edge["source"], edge["signal"], edge["run_id"]) == ("iris_v1", "raw", None)


@pytest.mark.anyio
async def test_register_source_outside_the_data_folder_is_refused_as_invalid_path(
    legacy_session: Client, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a,b\n1,2\n", encoding="utf-8")

    for uri in (str(outside), outside.as_uri(), "data/../goldfish.yaml"):
        error = await fail(
            legacy_session,
            "register_source",
            "INVALID_PATH",
            name="stray",
            uri=uri,
            description="",
            reason=LONG_REASON,
        )
        assert "outside" in error["message"]
    listed = await ok(legacy_session, "manage_sources", action="list")
    assert listed["total"] == 0


# -- caching ---------------------------------------------------------------------------------
