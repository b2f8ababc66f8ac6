"""What a stage module sees at run time on the process backend, through real MCP sessions.

The same facts hold on docker and GCE (``tests/e2e/test_backend_parity.py`` runs one pipeline on
all three); here the process backend alone, quickly: a stage's children end with it, its
working folder is a writable scratch folder, and ``get_output_path`` gives a path that can be
opened as the output's type says.
"""

from __future__ import annotations

import pytest
from mcp import Client

from tests.integration.pipeline_fixtures import (
    by_stage,
    ok,
    process_alive,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("reaping_stray_processes")]

ONE_STAGE = """\
stages:
  - name: prep
    outputs:
      features: {type: npy}
"""


async def stdout_lines(client: Client, run_id: str) -> list[str]:
    result = await ok(client, "logs", run_id=run_id)
    lines: list[str] = result["logs"]["lines"]
    return lines


async def test_run_when_a_stage_finishes_kills_the_children_it_left_running(legacy_session: Client) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    write_pipeline(slot, ONE_STAGE, {"prep": {"spawn_child": True}})
    submission = await start_run(legacy_session)

    final = await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])

    prep = by_stage(final["stages"])["prep"]
    assert prep["status"] == "completed", prep
    lines = await stdout_lines(legacy_session, prep["stage_run_id"])
    child = next(int(line.split()[-1]) for line in lines if line.startswith("prep child "))
    assert not process_alive(child)


SCRATCH_STAGE = """\
import json
import os
from pathlib import Path

from goldfish.io import get_output_path

start = sorted(os.listdir("."))
with open("tmp.json", "w") as handle:
    json.dump({"ok": True}, handle)
code = Path(os.environ["GOLDFISH_CODE_DIR"])
print(f"cwd is work dir: {Path.cwd() == Path(os.environ['GOLDFISH_WORK_DIR'])}", flush=True)
print(f"started in: {start}", flush=True)
print(f"code has: {sorted(p.name for p in (code / 'modules').iterdir())}", flush=True)
print(f"tmp.json in code: {(code / 'tmp.json').exists()}", flush=True)
open(get_output_path("report"), "w").write("done")
"""


async def test_run_when_a_stage_writes_into_its_working_folder_it_starts_empty_and_stays_out_of_the_code(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    (slot / "pipeline.yaml").write_text(
        "stages:\n  - name: scratch\n    outputs:\n      report: {type: file}\n", encoding="utf-8"
    )
    (slot / "modules").mkdir()
    (slot / "modules" / "scratch.py").write_text(SCRATCH_STAGE, encoding="utf-8")
    submission = await start_run(legacy_session)

    final = await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])

    stage = by_stage(final["stages"])["scratch"]
    lines = await stdout_lines(legacy_session, stage["stage_run_id"])
    assert stage["status"] == "completed", (stage, lines)
    assert lines == [
        "cwd is work dir: True",
        "started in: []",
        "code has: ['scratch.py']",
        "tmp.json in code: False",
    ]


ESCAPING_STAGE = """\
import subprocess
import sys

from goldfish.io import get_output_path

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(f"escaped child {child.pid}", flush=True)
open(get_output_path("report"), "w").write("done")
"""


async def test_run_when_a_stage_finishes_kills_a_child_that_left_its_process_group(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "alpha")
    (slot / "pipeline.yaml").write_text(
        "stages:\n  - name: escape\n    outputs:\n      report: {type: file}\n", encoding="utf-8"
    )
    (slot / "modules").mkdir()
    (slot / "modules" / "escape.py").write_text(ESCAPING_STAGE, encoding="utf-8")
    submission = await start_run(legacy_session)

    final = await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])

    stage = by_stage(final["stages"])["escape"]
    assert stage["status"] == "completed", stage
    lines = await stdout_lines(legacy_session, stage["stage_run_id"])
    child = next(int(line.split()[-1]) for line in lines if line.startswith("escaped child "))
    assert not process_alive(child)
