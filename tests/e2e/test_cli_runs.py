"""The headless CLI (`goldfish run | runs | logs | status`) as real subprocesses in a temp project.

Pipelines are plain folders imported by `goldfish run DIR`; stages run on the process backend
through the detached driver, exactly as for the MCP `run` tool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from goldfish.context import ServerContext
from goldfish.project import initialize_project
from goldfish.runs.mirror import mirror_folder
from tests.conftest import set_finalization_gate, use_backend

CLI_TIMEOUT = 120

PIPELINE = """\
stages:
  - name: make
    outputs:
      numbers: {type: npy}
  - name: total
    inputs:
      numbers: {type: npy, from_stage: make, signal: numbers}
"""
MAKE = """\
import numpy as np
from goldfish.io import get_config, save_output

n = int(get_config()["n"])
save_output("numbers", np.arange(n, dtype=np.float64))
print(f"made {n} numbers")
"""
TOTAL = """\
from goldfish.io import load_input, log_metric

numbers = load_input("numbers")
print(f"total={float(numbers.sum())}")
log_metric("total", float(numbers.sum()))
"""
FAILING_TOTAL = """\
import sys

print("total cannot be computed", file=sys.stderr)
sys.exit(3)
"""
# Waits (bounded) for a flag file the test creates, so the test decides when the stage ends.
WAITING_TOTAL = """\
import time
from pathlib import Path
from goldfish.io import get_config, heartbeat

flag = Path(get_config()["flag"])
deadline = time.monotonic() + 60
while not flag.exists() and time.monotonic() < deadline:
    heartbeat("waiting for the flag")
    time.sleep(0.05)
print("flag seen")
"""
RESULTS_SPEC = "primary_metric: total\ndirection: maximize\n"


@dataclass(frozen=True)
class Result:
    """A finished CLI call."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def goldfish(project: Path, *args: str) -> Result:
    """Run ``python -m goldfish.cli ARGS --project PROJECT`` and wait for it."""
    done = subprocess.run(
        [sys.executable, "-m", "goldfish.cli", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        cwd=project,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write_pipeline(folder: Path, total: str = TOTAL, results_spec: bool = True) -> Path:
    """A plain folder with a two-stage numpy pipeline (make -> total)."""
    (folder / "modules").mkdir(parents=True)
    (folder / "configs").mkdir()
    (folder / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (folder / "modules" / "make.py").write_text(MAKE, encoding="utf-8")
    (folder / "modules" / "total.py").write_text(total, encoding="utf-8")
    (folder / "configs" / "make.yaml").write_text("n: 5\n", encoding="utf-8")
    if results_spec:
        (folder / "results_spec.yaml").write_text(RESULTS_SPEC, encoding="utf-8")
    return folder


def new_project(base: Path) -> Path:
    root = base / "project"
    initialize_project(str(root), "clitest")
    set_finalization_gate(root, enabled=False)  # the CLI tests run the same workspace repeatedly
    use_backend(root, "process")
    return root


def nothing_imported(project: Path) -> bool:
    """True when no workspace, version or slot file exists: a refused `goldfish run DIR` wrote nothing."""
    context = ServerContext.open(project)
    try:
        workspaces = context.workspace_rows.names()
        versions = context.db.connection.execute("SELECT count(*) FROM workspace_versions").fetchone()[0]
    finally:
        context.close()
    slots = [p for p in (project / "workspaces").glob("*/*")] if (project / "workspaces").is_dir() else []
    return workspaces == [] and versions == 0 and slots == []


def stages_by_name(submission: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["stage"]: stage for stage in submission["stages"]}


@dataclass(frozen=True)
class FinishedRun:
    """A project in which `goldfish run FOLDER --wait --json` has finished."""

    project: Path
    folder: Path
    result: Result
    submission: dict[str, Any]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    base = tmp_path_factory.mktemp("cli_runs")
    project = new_project(base)
    folder = write_pipeline(base / "pipe")
    result = goldfish(project, "run", str(folder), "--wait", "--json")
    return FinishedRun(project, folder, result, result.json())


def test_run_of_a_folder_with_wait_and_json_exits_0_and_reports_every_stage_completed(
    finished_run: FinishedRun,
) -> None:
    result, submission = finished_run.result, finished_run.submission
    assert result.code == 0, result.stderr
    assert submission["workspace"] == "pipe"
    assert submission["version"] == "v1"
    assert submission["state"] == "completed"
    assert submission["finished"] is True
    assert [stage["stage"] for stage in submission["stages"]] == ["make", "total"]
    assert {stage["status"] for stage in submission["stages"]} == {"completed"}
    # With --json, stdout is the JSON alone; progress lines went to stderr.
    assert "total" in result.stderr
    assert "completed" in result.stderr


def test_run_of_a_folder_when_done_leaves_no_slot_mounted_and_records_the_import(
    finished_run: FinishedRun,
) -> None:
    imports = json.loads((finished_run.project / ".goldfish" / "imports.json").read_text(encoding="utf-8"))
    assert imports == {str(finished_run.folder.resolve()): "pipe"}
    assert all(not any(slot.iterdir()) for slot in (finished_run.project / "workspaces").iterdir())


def test_logs_of_a_finished_stage_prints_its_stdout(finished_run: FinishedRun) -> None:
    stages = stages_by_name(finished_run.submission)

    result = goldfish(finished_run.project, "logs", stages["total"]["stage_run_id"])

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == ["total=10.0"]


def test_logs_of_a_pipeline_run_prints_every_stage_in_order(finished_run: FinishedRun) -> None:
    result = goldfish(finished_run.project, "logs", finished_run.submission["pipeline_run_id"])

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.index("made 5 numbers") < lines.index("total=10.0")
    assert any(line.startswith("== make (stage-") for line in lines)


def test_runs_json_lists_the_stage_runs_of_the_finished_run(finished_run: FinishedRun) -> None:
    result = goldfish(finished_run.project, "runs", "--workspace", "pipe", "--json")

    assert result.code == 0, result.stderr
    listed = {run["stage_run_id"]: run for run in result.json()["runs"]}
    for stage in finished_run.submission["stages"]:
        assert listed[stage["stage_run_id"]]["status"] == "completed"
        assert listed[stage["stage_run_id"]]["workspace"] == "pipe"


def test_runs_as_text_shows_a_table_with_the_stage_ids(finished_run: FinishedRun) -> None:
    result = goldfish(finished_run.project, "runs", "--state", "completed")

    assert result.code == 0, result.stderr
    assert result.stdout.startswith("RUN ")
    for stage in finished_run.submission["stages"]:
        assert stage["stage_run_id"] in result.stdout


def test_run_of_an_imported_workspace_by_name_with_stages_runs_only_those(finished_run: FinishedRun) -> None:
    result = goldfish(finished_run.project, "run", "pipe", "--stages", "total", "--wait", "--json")

    assert result.code == 0, result.stderr
    submission = result.json()
    assert [stage["stage"] for stage in submission["stages"]] == ["total"]
    assert submission["stages"][0]["status"] == "completed"
    assert submission["version"] == "v1"


def test_rerun_of_an_edited_folder_saves_a_new_version_of_the_same_workspace(tmp_path: Path) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "experiment")
    (folder / "notes.txt").write_text("first try\n", encoding="utf-8")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    first = goldfish(project, "run", str(folder), "--wait")
    assert first.code == 0, first.stderr
    # Off a terminal, progress is one plain line per state change, on stderr (stdout is the result).
    assert any(line.startswith("total") and "completed" in line for line in first.stderr.splitlines())

    (folder / "configs" / "make.yaml").write_text("n: 7\n", encoding="utf-8")
    (folder / "notes.txt").unlink()
    second = goldfish(project, "run", str(folder), "--wait", "--json")

    assert second.code == 0, second.stderr
    submission = second.json()
    assert (submission["workspace"], submission["version"], submission["version_created"]) == (
        "experiment",
        "v2",
        True,
    )
    logs = goldfish(project, "logs", stages_by_name(submission)["total"]["stage_run_id"])
    assert logs.stdout.splitlines() == ["total=21.0"]
    context = ServerContext.open(project)
    try:
        files = context.repo.list_files(context.repo.branch_head("experiment"))
        workspaces = [info.name for info in context.workspaces.list(20, 0)[0]]
    finally:
        context.close()
    assert "notes.txt" not in files
    assert "configs/make.yaml" in files
    assert not any("__pycache__" in path for path in files)
    assert workspaces == ["experiment"]


def test_run_with_wait_exits_1_when_a_stage_exits_nonzero(tmp_path: Path) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "broken", total=FAILING_TOTAL, results_spec=False)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"primary_metric": "total", "direction": "maximize"}), encoding="utf-8")

    result = goldfish(project, "run", str(folder), "--wait", "--json", "--results-spec", str(spec))

    assert result.code == 1, result.stderr
    stages = stages_by_name(result.json())
    assert stages["make"]["status"] == "completed"
    assert (stages["total"]["status"], stages["total"]["exit_code"]) == ("failed", 3)
    stderr_log = goldfish(project, "logs", stages["total"]["stage_run_id"], "--stream", "stderr")
    assert "total cannot be computed" in stderr_log.stdout


def test_run_exits_2_and_names_the_problem_when_the_pipeline_is_invalid(tmp_path: Path) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "invalid")
    text = (folder / "pipeline.yaml").read_text(encoding="utf-8")
    (folder / "pipeline.yaml").write_text(
        text.replace("from_stage: make", "from_stage: nope"), encoding="utf-8"
    )

    result = goldfish(project, "run", str(folder), "--wait")

    assert result.code == 2
    assert "PIPELINE_INVALID" in result.stderr
    assert "nope" in result.stderr
    assert nothing_imported(project)


def test_run_exits_2_when_no_results_spec_is_given_or_found(tmp_path: Path) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "nospec", results_spec=False)

    result = goldfish(project, "run", str(folder), "--wait", "--json")

    assert result.code == 2
    error = result.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert "--results-spec" in error["remedy"]
    assert nothing_imported(project)


def test_run_exits_2_when_the_argument_is_neither_workspace_nor_pipeline_folder(tmp_path: Path) -> None:
    project = new_project(tmp_path)

    result = goldfish(project, "run", "no-such-workspace", "--wait")

    assert result.code == 2
    assert "WORKSPACE_NOT_FOUND" in result.stderr


@pytest.fixture
def flag(tmp_path: Path) -> Iterator[Path]:
    """A file whose creation ends the waiting stage; created at teardown whatever happened."""
    path = tmp_path / "flag"
    yield path
    path.touch()


def test_wait_timeout_exits_3_then_status_shows_the_stage_and_logs_follow_until_it_ends(
    tmp_path: Path, flag: Path
) -> None:
    project = new_project(tmp_path)
    folder = write_pipeline(tmp_path / "slow", total=WAITING_TOTAL)
    (folder / "configs" / "total.yaml").write_text(f"flag: {json.dumps(str(flag))}\n", encoding="utf-8")

    waited = goldfish(project, "run", str(folder), "--wait", "--timeout", "1", "--json")

    assert waited.code == 3, waited.stderr
    submission = waited.json()
    assert submission["finished"] is False
    total_id = stages_by_name(submission)["total"]["stage_run_id"]
    status = goldfish(project, "status")
    assert f"{total_id} slow/total: running" in status.stdout
    status_json = goldfish(project, "status", "--json").json()
    assert total_id in [run["stage_run_id"] for run in status_json["active_runs"]]

    flag.touch()
    followed = goldfish(project, "logs", total_id, "--follow")

    assert followed.code == 0, followed.stderr
    assert "flag seen" in followed.stdout.splitlines()
    finished = goldfish(project, "runs", "--pipeline-run", submission["pipeline_run_id"], "--json").json()
    assert {run["status"] for run in finished["runs"]} == {"completed"}


def test_mirror_folder_copies_changes_removes_extras_and_skips_caches(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "modules" / "__pycache__").mkdir(parents=True)
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref\n", encoding="utf-8")
    (source / "modules" / "a.py").write_text("a = 1\n", encoding="utf-8")
    (source / "modules" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (source / "link.py").symlink_to("modules/a.py")
    (target / "old").mkdir(parents=True)
    (target / "old" / "gone.txt").write_text("stale\n", encoding="utf-8")
    (target / "modules").mkdir()
    (target / "modules" / "a.py").write_text("a = 0\n", encoding="utf-8")

    mirror_folder(source, target)

    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    assert files == ["link.py", "modules", "modules/a.py"]
    assert (target / "modules" / "a.py").read_text(encoding="utf-8") == "a = 1\n"
    assert (target / "link.py").is_symlink()
