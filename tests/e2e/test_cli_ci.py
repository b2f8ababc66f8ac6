"""The command line as CI uses it: shell scripts of `goldfish` commands only, read by exit codes and JSON.

Each test writes a plain pipeline folder and a data file (what a repository would hold), then
drives the installed ``goldfish`` console script as real subprocesses in a fresh project with the
default config (finalization gate on), on the process backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from goldfish.project import initialize_project
from goldfish.server.app import server_for
from tests.conftest import structured, use_backend

SCRIPT_TIMEOUT = 300
PIPELINE = """\
stages:
  - name: total
    inputs:
      numbers: {type: dataset, dataset: numbers}
"""
TOTAL = """\
from goldfish.io import load_input, log_metric

folder = load_input("numbers")
values = [float(line) for line in (folder / "numbers.csv").read_text().split()]
print(f"total={sum(values)}")
log_metric("total", sum(values))
"""
RESULTS_SPEC = (
    "primary_metric: total\ndirection: maximize\nmin_value: 5\ngoal_value: 10\ndataset_split: all\n"
)

# What a CI job would use jq for: print one value of the JSON on stdin.
JSON_GET = """json_get() { python -c "import json, sys; print(json.load(sys.stdin)$1)"; }\n"""


def repository(base: Path) -> Path:
    """A CI checkout: a Goldfish project with a data file, and a pipeline folder beside it."""
    root = base / "project"
    initialize_project(str(root), "ci")
    use_backend(root, "process")
    (root / "data").mkdir()
    (root / "data" / "numbers.csv").write_text("1\n2\n3\n4\n", encoding="utf-8")
    pipe = root / "pipe"
    (pipe / "modules").mkdir(parents=True)
    (pipe / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (pipe / "modules" / "total.py").write_text(TOTAL, encoding="utf-8")
    (pipe / "results_spec.yaml").write_text(RESULTS_SPEC, encoding="utf-8")
    return root


def script(root: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` with bash in ``root``, the installed ``goldfish`` first on PATH (and ``json_get``)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GOLDFISH_PROJECT", None)
    return subprocess.run(
        ["bash", "-c", JSON_GET + body],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def test_ci_script_registers_data_runs_twice_with_finalize_auto_and_reads_both_results(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path)

    done = script(
        root,
        """
        goldfish sources add numbers data/numbers.csv --description "Four numbers to add up" || exit 10
        goldfish run pipe --wait --finalize auto > first.txt; echo "first=$?" >> codes
        goldfish run pipe --wait --finalize auto --json > second.json; echo "second=$?" >> codes
        goldfish history --json > history.json; echo "history=$?" >> codes
        """,
    )

    assert done.returncode == 0, done.stderr
    assert (root / "codes").read_text().split() == ["first=0", "second=0", "history=0"]
    assert "finalized prun-" in (root / "first.txt").read_text()
    second = json.loads((root / "second.json").read_text())
    assert second["finalize"]["finalization"]["results"]["ml_outcome"] == "success"
    runs = [
        r for r in json.loads((root / "history.json").read_text())["records"] if r["record_type"] == "run"
    ]
    assert len(runs) == 2
    assert {(r["ml_outcome"], r["primary_metric"], r["value"]) for r in runs} == {("success", "total", 10.0)}
    assert second["pipeline_run_id"] in {r["pipeline_run_id"] for r in runs}


def test_finalize_auto_when_the_run_fails_records_unknown_and_the_next_ci_run_is_not_blocked(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path)
    total = root / "pipe" / "modules" / "total.py"
    total.write_text("raise SystemExit('the data loader broke')\n", encoding="utf-8")

    failed = script(
        root,
        """
        goldfish sources add numbers data/numbers.csv --description "Four numbers to add up" || exit 10
        goldfish run ./pipe --wait --finalize auto --json > failed.json; echo "failed=$?" >> codes
        """,
    )
    total.write_text(TOTAL, encoding="utf-8")
    fixed = script(
        root, 'goldfish run ./pipe --wait --finalize auto --json > fixed.json; echo "fixed=$?" >> codes'
    )

    assert failed.returncode == 0 and fixed.returncode == 0, failed.stderr + fixed.stderr
    assert (root / "codes").read_text().split() == ["failed=1", "fixed=0"]
    recorded = json.loads((root / "failed.json").read_text())["finalize"]["finalization"]["results"]
    assert recorded["ml_outcome"] == "unknown" and recorded.get("value") is None
    assert "did not complete" in recorded["notes"]
    assert (
        json.loads((root / "fixed.json").read_text())["finalize"]["finalization"]["results"]["value"] == 10.0
    )


def test_second_run_without_finalize_exits_4_naming_the_command_that_unblocks_it(tmp_path: Path) -> None:
    root = repository(tmp_path)

    done = script(
        root,
        """
        goldfish sources add numbers data/numbers.csv --description "Four numbers to add up" || exit 10
        goldfish run pipe --wait --json > first.json || exit 11
        goldfish run pipe --wait; echo "gated=$?" >> codes
        goldfish run pipe --wait --json > gated.json; echo "gated_json=$?" >> codes
        run_id=$(goldfish runs --json | json_get '["runs"][0]["pipeline_run_id"]')
        goldfish finalize "$run_id" --value 10 --notes "sum is right"; echo "finalize=$?" >> codes
        goldfish run pipe --wait; echo "after=$?" >> codes
        """,
    )

    assert done.returncode == 0, done.stderr
    assert (root / "codes").read_text().split() == ["gated=4", "gated_json=4", "finalize=0", "after=0"]
    assert json.loads((root / "gated.json").read_text())["error"]["code"] == "FINALIZATION_REQUIRED"
    first = json.loads((root / "first.json").read_text())["pipeline_run_id"]
    assert "error [FINALIZATION_REQUIRED]" in done.stderr
    assert f"goldfish finalize {first} --value 10" in done.stderr
    assert "finalize_run(" not in done.stderr and "details." not in done.stderr


def test_run_of_a_pipeline_whose_dataset_is_not_registered_prints_the_problem_and_the_command(
    tmp_path: Path,
) -> None:
    root = repository(tmp_path)

    done = script(root, "goldfish run pipe --wait")

    assert done.returncode == 2
    assert "error [PIPELINE_INVALID]" in done.stderr
    assert "dataset 'numbers' is not registered" in done.stderr
    assert "goldfish sources add" in done.stderr
    assert "register_source" not in done.stderr


def _mcp_call(root: Path, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with Client(server_for(root), mode="legacy") as client:
            return structured(await client.call_tool(tool, arguments))

    return anyio.run(go)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [({"limit": 5}, 0), ({"limit": "many"}, 2), ({"limt": 5}, 2)],
)
def test_call_prints_the_json_an_mcp_client_gets(
    tmp_path: Path, arguments: dict[str, Any], code: int
) -> None:
    root = repository(tmp_path)

    done = script(root, f"goldfish call list_workspaces --args '{json.dumps(arguments)}'")

    assert done.returncode == code, done.stderr
    assert json.loads(done.stdout) == _mcp_call(root, "list_workspaces", arguments)


def test_backup_then_restore_into_a_new_folder_gives_the_same_history(tmp_path: Path) -> None:
    root = repository(tmp_path)
    restored = tmp_path / "restored"

    done = script(
        root,
        f"""
        set -e
        goldfish sources add numbers data/numbers.csv --description "Four numbers to add up"
        goldfish run pipe --wait --finalize auto > /dev/null
        goldfish backup --reason "before the disk is replaced"
        id=$(goldfish backups --json | json_get '["backups"][0]["backup_id"]')
        goldfish restore "$id" --into {restored}
        goldfish history --json > before.json
        goldfish --project {restored} history --json > after.json
        """,
    )

    assert done.returncode == 0, done.stderr
    assert "database integrity: ok; versions: ok" in done.stdout
    before = json.loads((root / "before.json").read_text())["records"]
    after = json.loads((root / "after.json").read_text())["records"]
    assert [(r["record_id"], r["ml_outcome"], r["value"]) for r in after] == [
        (r["record_id"], r["ml_outcome"], r["value"]) for r in before
    ]


def test_sources_add_again_with_the_same_data_succeeds_and_with_changed_data_says_so(tmp_path: Path) -> None:
    root = repository(tmp_path)

    done = script(
        root,
        """
        goldfish sources add numbers data/numbers.csv --description "Four numbers" --json > first.json
        echo "first=$?" >> codes
        goldfish sources add numbers data/numbers.csv --description "Four numbers" --json > again.json
        echo "again=$?" >> codes
        echo 5 >> data/numbers.csv
        goldfish sources add numbers data/numbers.csv --description "Five numbers"; echo "changed=$?" >> codes
        """,
    )

    assert (root / "codes").read_text().split() == ["first=0", "again=0", "changed=2"]
    assert json.loads((root / "again.json").read_text()) == json.loads((root / "first.json").read_text())
    assert "error [SOURCE_EXISTS]" in done.stderr
    assert "registered_hash" in done.stderr


def test_call_with_arguments_that_are_not_a_json_object_prints_the_error_json(tmp_path: Path) -> None:
    root = repository(tmp_path)

    done = script(root, "goldfish call list_workspaces --args '[1, 2]'")

    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert (error["code"], error["details"]) == ("INVALID_ARGUMENT", {"field": "--args"})
