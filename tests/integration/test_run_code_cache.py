"""Caching by what a stage really imports, through real MCP sessions and real stage processes.

The three-stage pipeline of ``pipeline_fixtures`` (prep → train → evaluate) with two extra
imports: ``evaluate`` uses a helper module ``modules/scoring.py``. Each edit below is a real save
of the slot, and each run is executed by the detached driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.integration.pipeline_fixtures import (
    by_stage,
    ok,
    stage_module,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

EVALUATE = "from modules import scoring\n" + stage_module(["model"], {"report": "file"})
# Changing the stage name stagekit mixes into its output changes what train writes.
TRAIN_V2 = (
    "import modules.stagekit as kit\n\nkit.STAGE = 'train-v2'\n"
    "kit.main(['features'], {'model': 'directory'})\n"
)
DYNAMIC_PREP = (
    "import importlib\n\nkit = importlib.import_module('modules.' + 'stagekit')\n"
    "kit.main([], {'features': 'npy'})\n"
)


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


async def run_stages(client: Client) -> dict[str, dict[str, Any]]:
    """Run the workspace in w1 to its end; its stage runs by stage name."""
    submission = await start_run(client)
    finished = await wait_for_pipeline(client, submission["pipeline_run_id"])
    assert finished["state"] == "completed", finished
    return by_stage(finished["stages"])


def executed(stages: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name, stage in stages.items() if not stage["cache_hit"])


async def code_of(client: Client, stage_run_id: str) -> dict[str, Any]:
    result = await ok(client, "inspect_run", run_id=stage_run_id, include=["metadata"])
    code: dict[str, Any] = result["inspect"]["metadata"]["code"]
    return code


async def prepared(client: Client) -> Path:
    slot = await workspace_in_slot(client, "alpha")
    write_pipeline(slot)
    (slot / "modules" / "scoring.py").write_text("WEIGHT = 1\n", encoding="utf-8")
    (slot / "modules" / "evaluate.py").write_text(EVALUATE, encoding="utf-8")
    assert executed(await run_stages(client)) == ["evaluate", "prep", "train"]
    return slot


@pytest.mark.anyio
async def test_rerun_after_editing_one_stage_module_reruns_that_stage_and_its_dependents_only(
    legacy_session: Client,
) -> None:
    slot = await prepared(legacy_session)

    (slot / "modules" / "evaluate.py").write_text(EVALUATE + "# tuned the report\n", encoding="utf-8")
    assert executed(await run_stages(legacy_session)) == ["evaluate"]

    (slot / "modules" / "train.py").write_text(TRAIN_V2, encoding="utf-8")
    after_train_edit = await run_stages(legacy_session)

    assert executed(after_train_edit) == ["evaluate", "train"]
    code = await code_of(legacy_session, after_train_edit["train"]["stage_run_id"])
    assert code == {
        "scope": "imports",
        "files": ["modules/stagekit.py", "modules/train.py"],
        "fallback_reason": None,
    }


@pytest.mark.anyio
async def test_rerun_after_editing_a_shared_helper_reruns_the_stages_importing_it(
    legacy_session: Client,
) -> None:
    slot = await prepared(legacy_session)

    (slot / "modules" / "scoring.py").write_text("WEIGHT = 2\n", encoding="utf-8")
    only_evaluate = await run_stages(legacy_session)
    (slot / "modules" / "stagekit.py").write_text(
        (slot / "modules" / "stagekit.py").read_text(encoding="utf-8") + "# shared by every stage\n",
        encoding="utf-8",
    )
    everything = await run_stages(legacy_session)

    assert executed(only_evaluate) == ["evaluate"]
    assert executed(everything) == ["evaluate", "prep", "train"]
    code = await code_of(legacy_session, only_evaluate["evaluate"]["stage_run_id"])
    assert code["files"] == ["modules/evaluate.py", "modules/scoring.py", "modules/stagekit.py"]


@pytest.mark.anyio
async def test_stage_with_a_computed_import_falls_back_to_the_modules_tree_and_inspect_run_says_so(
    legacy_session: Client,
) -> None:
    slot = await prepared(legacy_session)
    (slot / "modules" / "prep.py").write_text(DYNAMIC_PREP, encoding="utf-8")
    await run_stages(legacy_session)

    (slot / "modules" / "evaluate.py").write_text(EVALUATE + "# unrelated to prep\n", encoding="utf-8")
    stages = await run_stages(legacy_session)

    assert executed(stages) == ["evaluate", "prep"]  # prep's output is unchanged, so train is reused
    code = await code_of(legacy_session, stages["prep"]["stage_run_id"])
    assert code["scope"] == "modules_tree"
    assert code["fallback_reason"] == (
        "modules/prep.py: line 3: importlib.import_module() with a computed module name"
    )


@pytest.mark.anyio
async def test_dry_run_plan_shows_each_stage_code_scope_and_a_fallback_with_its_reason(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot)
    (slot / "modules" / "scoring.py").write_text("WEIGHT = 1\n", encoding="utf-8")
    (slot / "modules" / "evaluate.py").write_text(EVALUATE, encoding="utf-8")
    (slot / "modules" / "prep.py").write_text(DYNAMIC_PREP, encoding="utf-8")

    plan = by_stage((await start_run(legacy_session, dry_run=True))["stages"])

    assert plan["evaluate"]["code"] == {
        "scope": "imports",
        "files": ["modules/evaluate.py", "modules/scoring.py", "modules/stagekit.py"],
        "fallback_reason": None,
    }
    assert plan["prep"]["code"]["scope"] == "modules_tree"
    assert plan["prep"]["code"]["fallback_reason"].startswith(
        "modules/prep.py: line 3: importlib.import_module()"
    )
