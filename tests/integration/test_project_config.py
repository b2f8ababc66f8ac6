"""Project configuration through real MCP sessions: validate_config, reload_config, initialize_project."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.integration.workspace_support import (
    PIPELINE,
    audit,
    create,
    fail,
    hibernate,
    mount,
    ok,
    save,
    write,
)

# -- config ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_validate_config_when_goldfish_yaml_has_unknown_key_reports_suggestion_and_line(
    client: Client, project_root: Path
) -> None:
    valid = await ok(client, "validate_config")
    assert valid["valid"] is True
    assert valid["problems"] == []
    assert valid["checked"] == ["goldfish.yaml"]

    config = project_root / "goldfish.yaml"
    lines = config.read_text(encoding="utf-8").splitlines()
    assert lines[-1].startswith("  ")  # the file ends inside the `defaults:` block
    config.write_text("\n".join([*lines, "  timeout_secnds: 10", "slotz: [w1]", ""]), encoding="utf-8")
    report = await ok(client, "validate_config")
    assert report["valid"] is False
    problems = {p["key"]: p for p in report["problems"]}
    assert set(problems) == {"defaults.timeout_secnds", "slotz"}
    assert problems["defaults.timeout_secnds"]["line"] == len(lines) + 1
    assert "did you mean 'timeout_seconds'" in problems["defaults.timeout_secnds"]["message"]
    assert problems["slotz"]["line"] == len(lines) + 2
    assert "did you mean 'slots'" in problems["slotz"]["message"]
    assert all(p["path"] == "goldfish.yaml" for p in problems.values())


@pytest.mark.anyio
async def test_validate_config_when_workspace_pipeline_is_bad_reports_file_and_line(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    missing = await ok(client, "validate_config", workspace="baseline")
    assert missing["valid"] is False
    assert missing["problems"][0]["path"] == "pipeline.yaml"
    assert "pipeline.yaml" in missing["problems"][0]["message"]

    write(
        slot,
        {
            "pipeline.yaml": "stages:\n  - name: train\n    modul: trainer\n",
            "configs/train.yaml": "- not\n- a mapping\n",
            "pipelines/broken.yaml": "stages: [\n",
        },
    )
    report = await ok(client, "validate_config", workspace="w1")
    assert report["valid"] is False
    assert set(report["checked"]) == {
        "goldfish.yaml",
        "pipeline.yaml",
        "configs/train.yaml",
        "pipelines/broken.yaml",
    }
    by_path = {p["path"]: p for p in report["problems"]}
    assert set(by_path) == {"pipeline.yaml", "configs/train.yaml", "pipelines/broken.yaml"}
    assert by_path["pipeline.yaml"]["line"] == 3
    assert by_path["pipeline.yaml"]["key"] == "stages.0.modul"
    assert "did you mean 'module'" in by_path["pipeline.yaml"]["message"]
    assert by_path["configs/train.yaml"]["line"] == 1
    assert "mapping" in by_path["configs/train.yaml"]["message"]
    assert by_path["pipelines/broken.yaml"]["message"].startswith("not valid YAML")
    assert isinstance(by_path["pipelines/broken.yaml"]["line"], int)


@pytest.mark.anyio
async def test_validate_config_when_workspace_unmounted_checks_its_last_version(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"pipeline.yaml": "stages:\n  - name: Train\n"})
    await save(client)
    await hibernate(client)
    report = await ok(client, "validate_config", workspace="baseline")
    assert report["checked"] == ["goldfish.yaml", "pipeline.yaml"]
    assert report["valid"] is False
    found = [(p["path"], p["key"], p["line"]) for p in report["problems"]]
    assert ("pipeline.yaml", "stages.0.name", 2) in found

    await mount(client, "baseline")
    write(slot, {"pipeline.yaml": PIPELINE, "modules/train.py": "print('train')\n"})
    fixed = await ok(client, "validate_config", workspace="baseline")
    assert fixed["problems"] == []
    assert fixed["valid"] is True


@pytest.mark.anyio
async def test_reload_config_when_file_invalid_keeps_old_config_and_returns_config_invalid(
    client: Client, project_root: Path
) -> None:
    await ok(client, "status")  # the project is loaded with the valid config
    config = project_root / "goldfish.yaml"
    original = config.read_text(encoding="utf-8")
    config.write_text(original + "slots: [w1, w1]\nunknwn: 1\n", encoding="utf-8")
    error = await fail(client, "reload_config", "CONFIG_INVALID")
    assert {p["key"] for p in error["details"]["problems"]} == {"slots", "unknwn"}
    status = await ok(client, "status")
    assert [s["slot"] for s in status["slots"]] == ["w1", "w2", "w3"]
    # The server still works with the old config.
    await create(client, "baseline")
    await mount(client, "baseline", "w3")

    config.write_text(original + "goal: reach 95 percent\nslots: [w1, w2, w3, w4]\n", encoding="utf-8")
    reloaded = await ok(client, "reload_config")
    assert reloaded["slots"] == ["w1", "w2", "w3", "w4"]
    assert reloaded["project_name"] == "testproj"
    status = await ok(client, "status")
    assert status["project"]["goal"] == "reach 95 percent"
    assert [s["slot"] for s in status["slots"]] == ["w1", "w2", "w3", "w4"]
    assert status["slots"][2]["workspace"] == "baseline"
    await create(client, "extra")
    await mount(client, "extra", "w4")
    reloads = [e for e in await audit(client) if e["tool"] == "reload_config"]
    assert [(e["outcome"], e["error_code"]) for e in reloads] == [
        ("success", None),
        ("error", "CONFIG_INVALID"),
    ]


@pytest.mark.anyio
async def test_initialize_project_when_same_root_is_idempotent(client: Client, project_root: Path) -> None:
    await create(client, "baseline")
    result = await ok(client, "initialize_project", project_name="testproj", project_root=str(project_root))
    assert result["already_initialized"] is True
    assert result["created"] == []
    assert result["project_root"] == str(project_root.resolve())
    # Nothing was reset.
    assert [w["name"] for w in (await ok(client, "list_workspaces"))["workspaces"]] == ["baseline"]


@pytest.mark.anyio
async def test_initialize_project_when_different_root_returns_project_exists(
    client: Client, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    error = await fail(
        client, "initialize_project", "PROJECT_EXISTS", project_name="other", project_root=str(other)
    )
    assert not other.exists()
    assert error["remedy"]
    renamed = await fail(
        client,
        "initialize_project",
        "PROJECT_EXISTS",
        project_name="renamed",
        project_root=str(tmp_path / "project"),
    )
    assert renamed["details"]["project_name"] == "testproj"


@pytest.mark.anyio
async def test_initialize_project_when_server_has_no_project_creates_and_binds_it(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    async with Client(server_for(None)) as client:
        await fail(client, "status", "PROJECT_NOT_INITIALIZED")
        result = await ok(client, "initialize_project", project_name="fresh", project_root=str(root))
        assert result["already_initialized"] is False
        assert str(root / "goldfish.yaml") in result["created"]
        assert (root / "goldfish.yaml").is_file()
        assert (root / "STATE.md").is_file()
        for slot in ("w1", "w2", "w3"):
            assert (root / "workspaces" / slot).is_dir()
        status = await ok(client, "status")
        assert status["project"]["name"] == "fresh"
        await create(client, "baseline")
        assert (await ok(client, "initialize_project", project_name="fresh", project_root=str(root)))[
            "already_initialized"
        ] is True
        await fail(
            client,
            "initialize_project",
            "PROJECT_EXISTS",
            project_name="second",
            project_root=str(tmp_path / "second"),
        )
