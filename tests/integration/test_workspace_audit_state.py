"""Thoughts, the audit log, STATE.md and the state resources through real MCP sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import (
    audit,
    create,
    fail,
    hibernate,
    manage,
    mount,
    ok,
    read_resource,
    save,
    state_md,
    workspace_with_two_versions,
    write,
)

# -- thoughts, audit, STATE.md and resources -------------------------------------------------


@pytest.mark.anyio
async def test_log_thought_then_get_workspace_thoughts_lists_newest_first(client: Client) -> None:
    await create(client, "baseline")
    await mount(client, "baseline")
    first = await ok(client, "log_thought", thought="loss plateaus after epoch 3", workspace="baseline")
    assert first["thought"]["workspace"] == "baseline"
    await ok(
        client, "log_thought", thought="try a cosine schedule", workspace="w1", run_id="stage-0123456789ab"
    )
    await ok(client, "log_thought", thought="a project-wide note")
    result = await ok(client, "get_workspace_thoughts", workspace="baseline")
    assert [t["thought"] for t in result["thoughts"]] == [
        "try a cosine schedule",
        "loss plateaus after epoch 3",
    ]
    assert result["thoughts"][0]["run_id"] == "stage-0123456789ab"
    assert result["total"] == 2
    paged = await ok(client, "get_workspace_thoughts", workspace="w1", limit=1, offset=1)
    assert [t["thought"] for t in paged["thoughts"]] == ["loss plateaus after epoch 3"]
    assert paged["total"] == 2
    await fail(client, "log_thought", "WORKSPACE_NOT_FOUND", thought="about nothing", workspace="nope")
    await fail(client, "log_thought", "INVALID_ARGUMENT", thought="   ")
    await fail(client, "get_workspace_thoughts", "WORKSPACE_NOT_FOUND", workspace="nope")


@pytest.mark.anyio
async def test_mount_when_workspace_has_thoughts_returns_recent_ones(client: Client) -> None:
    await create(client, "baseline")
    await ok(client, "log_thought", thought="remember the warmup", workspace="baseline")
    result = await ok(client, "mount", workspace="baseline", slot="w1", reason=LONG_REASON)
    assert result["mount"]["recent_thoughts"] == ["remember the warmup"]


@pytest.mark.anyio
async def test_get_audit_log_has_one_row_per_state_changing_call_with_reason_and_outcome(
    client: Client,
) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    await save(client, message="the first save")
    await fail(client, "mount", "WORKSPACE_NOT_FOUND", workspace="nope", slot="w2", reason=LONG_REASON)
    await fail(client, "create_workspace", "REASON_REQUIRED", name="x", goal="g", reason="short")
    # Read-only calls leave no rows.
    await ok(client, "status")
    await ok(client, "list_workspaces")
    await ok(client, "diff", target="w1")
    await ok(client, "inspect_workspace", name="baseline")
    await ok(client, "get_workspace_thoughts", workspace="baseline")

    entries = await audit(client)
    assert [e["tool"] for e in entries] == [
        "create_workspace",
        "mount",
        "save_version",
        "mount",
        "create_workspace",
    ]
    newest, second, third, fourth, fifth = entries
    assert (newest["outcome"], newest["error_code"]) == ("error", "REASON_REQUIRED")
    assert (second["outcome"], second["error_code"]) == ("error", "WORKSPACE_NOT_FOUND")
    assert second["reason"] == LONG_REASON
    assert (third["outcome"], third["error_code"]) == ("success", None)
    assert third["reason"] == "the first save"
    assert third["arguments"] == {"slot": "w1", "message": "the first save"}
    assert fourth["reason"] == LONG_REASON
    assert fifth["workspace"] == "baseline"
    assert fifth["arguments"]["goal"] == "find a better model"
    assert all(e["duration_ms"] >= 0 for e in entries)
    assert all(e["age"].endswith("ago") for e in entries)
    page = await ok(client, "get_audit_log", limit=2, offset=1)
    assert [e["tool"] for e in page["entries"]] == ["mount", "save_version"]
    assert page["total"] == 5


@pytest.mark.anyio
async def test_get_audit_log_for_workspace_includes_calls_made_through_its_slot(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    await save(client)
    await ok(client, "rollback", slot="w1", version="v1", reason=LONG_REASON)
    await hibernate(client)
    await create(client, "other")
    entries = await audit(client, workspace="baseline")
    assert [e["tool"] for e in entries] == [
        "hibernate",
        "rollback",
        "save_version",
        "mount",
        "create_workspace",
    ]
    assert {e["workspace"] for e in entries} == {"baseline"}


@pytest.mark.anyio
async def test_get_audit_log_when_filtered_by_slot_means_the_workspace_mounted_there(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    await save(client)
    await create(client, "other")
    by_name = await audit(client, workspace="baseline")
    by_slot = await audit(client, workspace="w1")
    assert [e["tool"] for e in by_slot] == ["save_version", "mount", "create_workspace"]
    assert by_slot == by_name


@pytest.mark.anyio
async def test_get_audit_log_when_arguments_have_secret_names_redacts_them(client: Client) -> None:
    # An argument error is audited with the arguments as sent; secret-named ones must not be stored.
    await fail(
        client,
        "create_workspace",
        "INVALID_ARGUMENT",
        name="baseline",
        goal=42,
        reason=LONG_REASON,
        api_key="sk-live-123",
        extra={"HF_TOKEN": "hf_secret_456", "batch": 8},
    )
    entries = await audit(client)
    assert len(entries) == 1
    arguments = entries[0]["arguments"]
    assert arguments["api_key"] == "***"
    assert arguments["extra"] == {"HF_TOKEN": "***", "batch": 8}
    assert arguments["name"] == "baseline"
    dumped = json.dumps(entries)
    assert "sk-live-123" not in dumped
    assert "hf_secret_456" not in dumped


@pytest.mark.anyio
async def test_state_md_on_disk_is_regenerated_after_each_state_change(
    client: Client, project_root: Path
) -> None:
    await create(client, "baseline", goal="reach 90 percent")
    text = state_md(project_root)
    assert "# testproj" in text
    assert "### baseline: reach 90 percent" in text
    assert "- no versions yet" in text
    assert "- w1: (empty)" in text

    slot = await mount(client, "baseline")
    assert "- w1: baseline" in state_md(project_root)

    write(slot, {"a.py": "a\n"})
    await save(client, message="first cut of the model")
    assert "v1" in state_md(project_root)
    assert "first cut of the model" in state_md(project_root)

    await ok(client, "log_thought", thought="dropout helps on small data", workspace="baseline")
    text = state_md(project_root)
    assert "## Recent thoughts" in text
    assert "(baseline): dropout helps on small data" in text

    await hibernate(client)
    assert "- w1: (empty)" in state_md(project_root)


@pytest.mark.anyio
async def test_status_shows_slots_dirtiness_recent_audit_and_state_text(
    client: Client, project_root: Path
) -> None:
    slot = await workspace_with_two_versions(client)
    status = await ok(client, "status")
    assert status["project"]["name"] == "testproj"
    assert status["project"]["workspaces"] == 1
    slots = {s["slot"]: s for s in status["slots"]}
    assert list(slots) == ["w1", "w2", "w3"]
    assert slots["w1"]["workspace"] == "baseline"
    assert slots["w1"]["dirty"] is False
    assert slots["w1"]["last_version"]["version"] == "v2"
    assert slots["w2"]["workspace"] is None
    assert slots["w2"]["dirty"] is None
    assert [e["tool"] for e in status["recent_audit"]] == [
        "save_version",
        "save_version",
        "mount",
        "create_workspace",
    ]
    assert status["state_md"].startswith("# testproj")
    write(slot, {"new.txt": "x\n"})
    assert (await ok(client, "status"))["slots"][0]["dirty"] is True


@pytest.mark.anyio
async def test_resources_state_and_workspace_state_follow_changes(client: Client) -> None:
    state = await read_resource(client, "goldfish://state")
    assert state.startswith("# testproj")
    assert "## Workspaces (0)" in state

    await workspace_with_two_versions(client)
    await manage(client, "baseline", "tag", version="v1", tag="first")
    await ok(client, "log_thought", thought="v2 is the better one", workspace="baseline")
    state = await read_resource(client, "goldfish://state")
    assert "- w1: baseline" in state
    assert "### baseline" in state
    assert "v1 [first]" in state
    assert "v2 is the better one" in state

    ws_state = await read_resource(client, "goldfish://workspaces/baseline/state")
    assert ws_state.startswith("# baseline")
    assert "Slot: w1" in ws_state
    assert "## Versions (2)" in ws_state
    assert "- v1 [first]" in ws_state
    assert "lower the learning rate" in ws_state
    assert "v2 is the better one" in ws_state

    missing = await read_resource(client, "goldfish://workspaces/nope/state")
    assert "No workspace named 'nope'" in missing
