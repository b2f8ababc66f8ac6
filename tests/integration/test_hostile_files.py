"""Hostile files in a slot: YAML bombs, deep nesting, duplicate keys, links out and ``..`` names.

Each one answers with a structured error (or a problem in validate_config's report) in bounded
time and memory; nothing outside the slot is read or echoed into a reply; and the server keeps
answering other calls right after. Real files, real MCP sessions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON, call
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

ONE_STAGE = "stages:\n  - name: train\n    outputs:\n      model: {type: file}\n"
# A value that lives only in files outside the slot: no reply may ever contain it.
MARKER = "OUTSIDE-SECRET-7f3a9c"


def alias_bomb(levels: int = 9) -> str:
    """About 350 bytes that expand to 9**levels strings through nested aliases."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int = 5000) -> str:
    return "stages: " + "[" * depth + "]" * depth + "\n"


async def ready_slot(client: Client) -> Path:
    """Workspace ``ws`` mounted in w1 with a valid one-stage pipeline and configs/train.yaml."""
    slot = await workspace_in_slot(client, "ws")
    write_pipeline(slot, ONE_STAGE, {"train": {"lr": 0.1}})
    return slot


async def dry_run(client: Client, **arguments: Any) -> dict[str, Any]:
    return await call(client, "run", workspace="w1", reason=LONG_REASON, dry_run=True, **arguments)


def assert_not_leaked(*replies: Any) -> None:
    for reply in replies:
        assert MARKER not in json.dumps(reply), reply


def plant(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def link_out(slot: Path, rel: str, target: Path) -> None:
    """Replace ``slot/rel`` by a link to ``target`` (outside the slot)."""
    path = slot / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())


# -- '..' in names that become paths ------------------------------------------------------------


@pytest.mark.anyio
async def test_run_when_pipeline_name_climbs_out_of_the_slot_refuses_it_without_reading(
    legacy_session: Client, project_root: Path
) -> None:
    slot = await ready_slot(legacy_session)
    evil = f"stages:\n  - name: train\n    modul: {MARKER}\n"
    names = ["../../x/evil", "../../../x/evil", "../../../../x/evil", "a/b", "/etc/passwd", ".hidden"]
    for name in names:
        landing = (slot / "pipelines" / f"{name}.yaml").resolve()
        if not name.startswith("/") and not landing.is_relative_to(slot):
            plant(landing, evil)  # what the name would read if it were followed

    for name in names:
        refused = await dry_run(legacy_session, pipeline=name)
        assert refused["success"] is False, (name, refused)
        assert refused["error"]["code"] == "INVALID_ARGUMENT", refused
        assert_not_leaked(refused)
        real = await call(
            legacy_session,
            "run",
            workspace="w1",
            reason=LONG_REASON,
            results_spec=RESULTS_SPEC,
            pipeline=name,
        )
        assert real["success"] is False, real
        assert_not_leaked(real)
    # The valid spelling still works.
    plant(slot / "pipelines" / "alt.yaml", ONE_STAGE)
    planned = await dry_run(legacy_session, pipeline="alt")
    assert planned["success"] is True, planned


@pytest.mark.anyio
async def test_run_when_pipeline_yaml_names_paths_with_dots_or_slashes_lists_each_as_a_problem(
    legacy_session: Client,
) -> None:
    slot = await ready_slot(legacy_session)
    plant(
        slot / "pipeline.yaml",
        "stages:\n"
        "  - name: train\n"
        "    module: ../../evil\n"
        "    outputs:\n"
        "      ../../model: {type: file}\n"
        "  - name: score\n"
        "    inputs:\n"
        "      model: {type: file, from_stage: train, signal: ../x}\n",
    )

    refused = await fail(
        legacy_session, "run", "PIPELINE_INVALID", workspace="w1", reason=LONG_REASON, dry_run=True
    )

    keys = sorted(p["key"] for p in refused["details"]["problems"])
    assert keys == [
        "stages.0.module",
        "stages.0.outputs.../../model.[key]",
        "stages.1.inputs.model.signal",
    ], refused
    assert all(p["line"] is not None for p in refused["details"]["problems"])


# -- folders and files in the slot that link out of it -----------------------------------------


@pytest.mark.anyio
async def test_dry_run_and_validate_config_when_configs_folder_links_out_refuse_it(
    legacy_session: Client, tmp_path: Path
) -> None:
    slot = await ready_slot(legacy_session)
    outside = tmp_path / "outside-configs"
    plant(outside / "train.yaml", f"lr: {MARKER}\n")
    link_out(slot, "configs", outside)

    planned = await dry_run(legacy_session)
    report = await ok(legacy_session, "validate_config", workspace="ws")

    assert planned["success"] is False, planned
    assert planned["error"]["code"] == "UNSAFE_SYMLINK"
    assert planned["error"]["details"]["path"] == "configs/train.yaml"
    assert report["valid"] is False
    assert [p["path"] for p in report["problems"]] == ["configs"]
    assert "link" in report["problems"][0]["message"]
    assert_not_leaked(planned, report)


@pytest.mark.anyio
async def test_validate_config_when_pipelines_folder_links_out_does_not_read_what_it_holds(
    legacy_session: Client, tmp_path: Path
) -> None:
    slot = await ready_slot(legacy_session)
    outside = tmp_path / "outside-pipelines"
    plant(outside / "evil.yaml", f"stages:\n  - name: train\n    modul: {MARKER}\n")
    (slot / "pipelines").mkdir(exist_ok=True)
    link_out(slot, "pipelines", outside)

    report = await ok(legacy_session, "validate_config", workspace="ws")
    planned = await dry_run(legacy_session, pipeline="evil")

    assert report["valid"] is False
    assert [p["path"] for p in report["problems"]] == ["pipelines"]
    assert "pipelines/evil.yaml" not in report["checked"]
    assert planned["success"] is False
    assert planned["error"]["code"] == "UNSAFE_SYMLINK"
    assert_not_leaked(report, planned)


@pytest.mark.anyio
async def test_readers_when_pipeline_yaml_links_to_an_outside_file_refuse_it(
    legacy_session: Client, tmp_path: Path
) -> None:
    slot = await ready_slot(legacy_session)
    outside = plant(tmp_path / "outside.yaml", f"stages:\n  - name: train\n    modul: {MARKER}\n")
    link_out(slot, "pipeline.yaml", outside)

    planned = await dry_run(legacy_session)
    report = await ok(legacy_session, "validate_config", workspace="ws")
    inspected = await call(legacy_session, "inspect_workspace", name="ws", include=["pipeline"])

    assert planned["error"]["code"] == "UNSAFE_SYMLINK"
    assert report["valid"] is False
    assert report["problems"][0]["path"] == "pipeline.yaml"
    assert inspected["success"] is False
    assert inspected["error"]["code"] == "UNSAFE_SYMLINK"
    assert_not_leaked(planned, report, inspected)


# -- YAML bombs, deep nesting and huge files -------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("pipeline.yaml", ONE_STAGE + alias_bomb()),
        ("configs/train.yaml", "lr: 0.1\n" + alias_bomb()),
        ("pipeline.yaml", deep_nesting()),
        ("configs/train.yaml", "nested: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("pipeline.yaml", ONE_STAGE + "# padding\n" * 120_000),
    ],
    ids=["bomb-pipeline", "bomb-config", "deep-pipeline", "deep-config", "huge-pipeline"],
)
async def test_run_and_validate_config_when_yaml_is_too_complex_answer_yaml_too_complex(
    legacy_session: Client, rel: str, text: str
) -> None:
    slot = await ready_slot(legacy_session)
    plant(slot / rel, text)

    planned = await dry_run(legacy_session)
    still_up = await ok(legacy_session, "status")
    report = await ok(legacy_session, "validate_config", workspace="ws")
    real = await call(legacy_session, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC)

    assert planned["success"] is False, planned
    assert planned["error"]["code"] == "YAML_TOO_COMPLEX", planned["error"]
    assert planned["error"]["details"]["path"] == rel
    assert planned["error"]["remedy"]
    assert still_up["success"] is True
    assert report["valid"] is False
    assert [p["path"] for p in report["problems"]] == [rel]
    assert "too" in report["problems"][0]["message"]
    assert real["success"] is False
    assert real["error"]["code"] == "YAML_TOO_COMPLEX"


@pytest.mark.anyio
async def test_goldfish_yaml_when_it_is_an_alias_bomb_is_reported_not_expanded(
    legacy_session: Client, project_root: Path
) -> None:
    await ok(legacy_session, "status")  # the project is loaded before its config is spoiled
    config = project_root / "goldfish.yaml"
    config.write_text(config.read_text(encoding="utf-8") + alias_bomb(), encoding="utf-8")

    report = await ok(legacy_session, "validate_config")
    reloaded = await fail(legacy_session, "reload_config", "CONFIG_INVALID")

    assert report["valid"] is False
    assert report["problems"][0]["path"] == "goldfish.yaml"
    assert "too complex" in report["problems"][0]["message"]
    assert reloaded["details"]["problems"] == report["problems"]
    assert (await ok(legacy_session, "status"))["success"] is True


# -- duplicate keys ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_duplicate_key_in_pipeline_or_stage_config_is_refused_naming_both_lines(
    legacy_session: Client,
) -> None:
    slot = await ready_slot(legacy_session)
    plant(slot / "configs" / "train.yaml", "lr: 0.1\nepochs: 3\nlr: 0.5\n")

    from_config = await dry_run(legacy_session)
    config_report = await ok(legacy_session, "validate_config", workspace="ws")
    plant(slot / "configs" / "train.yaml", "lr: 0.1\n")
    plant(slot / "pipeline.yaml", ONE_STAGE + "stages:\n  - name: other\n")
    from_pipeline = await dry_run(legacy_session)

    assert from_config["error"]["code"] == "DUPLICATE_KEY"
    assert from_config["error"]["details"]["lines"] == [1, 3]
    assert from_config["error"]["details"]["key"] == "lr"
    assert from_config["error"]["details"]["path"] == "configs/train.yaml"
    assert "lines 1 and 3" in from_config["error"]["message"]
    assert [(p["path"], p["line"]) for p in config_report["problems"]] == [("configs/train.yaml", 3)]
    assert "lines 1 and 3" in config_report["problems"][0]["message"]
    assert from_pipeline["error"]["code"] == "DUPLICATE_KEY"
    assert from_pipeline["error"]["details"]["lines"] == [1, 5]


@pytest.mark.anyio
async def test_duplicate_key_in_goldfish_yaml_is_reported_with_both_lines(
    legacy_session: Client, project_root: Path
) -> None:
    await ok(legacy_session, "status")  # the project is loaded before its config is spoiled
    config = project_root / "goldfish.yaml"
    lines = config.read_text(encoding="utf-8").splitlines()
    config.write_text("\n".join([*lines, "project_name: again", ""]), encoding="utf-8")

    report = await ok(legacy_session, "validate_config")
    reloaded = await fail(legacy_session, "reload_config", "CONFIG_INVALID")

    assert report["valid"] is False
    (problem,) = report["problems"]
    assert (problem["path"], problem["line"]) == ("goldfish.yaml", len(lines) + 1)
    assert f"lines 1 and {len(lines) + 1}" in problem["message"]
    assert reloaded["details"]["problems"] == [problem]


# -- forged logs cursors -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_logs_when_cursor_is_forged_answers_invalid_argument(legacy_session: Client) -> None:
    await ready_slot(legacy_session)
    submission = await start_run(legacy_session)
    await wait_for_pipeline(legacy_session, submission["pipeline_run_id"])
    run_id = submission["stages"][0]["stage_run_id"]
    forged = [
        "stdout:-5",
        "stdout:" + "9" * 25,
        "stderr:-1,stdout:0",
        "stdout:1,stdout:2",
        "stdout:+5",
        "stdout:1e3",
        "stdout:",
        "stdin:3",
        "stdout:5," + "x" * 5000,
    ]

    for cursor in forged:
        refused = await fail(legacy_session, "logs", "INVALID_ARGUMENT", run_id=run_id, cursor=cursor)
        assert refused["details"]["field"] == "cursor"
    past_the_end = await ok(legacy_session, "logs", run_id=run_id, cursor="stdout:999999999999")
    assert past_the_end["logs"]["lines"] == []


# -- the version store passes git fsck -----------------------------------------------------------


@pytest.mark.anyio
async def test_version_store_after_the_workspace_flow_passes_git_fsck_strict(
    legacy_session: Client, project_root: Path
) -> None:
    slot = await workspace_in_slot(legacy_session, "ws")
    plant(slot / "train.py", "lr = 0.1\n")
    await ok(legacy_session, "save_version", slot="w1", message="first version of the script")
    plant(slot / "train.py", "lr = 0.2\n")
    await ok(legacy_session, "rollback", slot="w1", version="v1", reason=LONG_REASON)
    await ok(legacy_session, "hibernate", slot="w1", reason=LONG_REASON)
    await ok(legacy_session, "create_workspace", name="fresh", goal="an empty start", reason=LONG_REASON)

    checked = subprocess.run(
        ["git", "--git-dir", str(project_root / ".goldfish" / "dev-repo"), "fsck", "--strict", "--full"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "missing" not in checked.stdout + checked.stderr
