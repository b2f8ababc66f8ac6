"""Workspaces through real MCP sessions: create, mount, hibernate, inspect, delete, branch off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import (
    FILES_V1,
    PIPELINE,
    create,
    diff,
    fail,
    hibernate,
    manage,
    mount,
    ok,
    save,
    statuses,
    tree,
    version_names,
    workspace_with_two_versions,
    write,
)

# -- create, mount ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_workspace_when_new_starts_empty_without_versions(client: Client) -> None:
    workspace = await create(client, "baseline", goal="beat 0.9 accuracy")
    assert workspace["name"] == "baseline"
    assert workspace["goal"] == "beat 0.9 accuracy"
    assert workspace["versions"] == 0
    assert workspace["latest_version"] is None
    assert workspace["mounted_slot"] is None
    assert workspace["parent_workspace"] is None
    listed = await ok(client, "list_workspaces")
    assert [w["name"] for w in listed["workspaces"]] == ["baseline"]
    assert listed["total"] == 1


@pytest.mark.anyio
async def test_create_workspace_when_name_taken_returns_workspace_exists(client: Client) -> None:
    await create(client, "baseline")
    error = await fail(
        client, "create_workspace", "WORKSPACE_EXISTS", name="baseline", goal="g", reason=LONG_REASON
    )
    assert error["details"]["workspace"] == "baseline"


@pytest.mark.anyio
async def test_mount_when_slot_free_gives_empty_plain_folder_to_edit(
    client: Client, project_root: Path
) -> None:
    await create(client, "baseline")
    result = await ok(client, "mount", workspace="baseline", slot="w2", reason=LONG_REASON)
    info = result["mount"]
    slot = Path(info["slot_path"])
    assert slot == (project_root / "workspaces" / "w2").resolve()
    assert slot.is_dir()
    assert list(slot.iterdir()) == []
    assert info["slot"] == "w2"
    assert info["workspace"]["mounted_slot"] == "w2"
    assert not (slot / ".git").exists()


@pytest.mark.anyio
async def test_mount_when_same_slot_again_is_idempotent(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"keep.txt": "unsaved\n"})
    again = await ok(client, "mount", workspace="baseline", slot="w1", reason=LONG_REASON)
    assert again["mount"]["slot"] == "w1"
    assert (slot / "keep.txt").read_text(encoding="utf-8") == "unsaved\n"


@pytest.mark.anyio
async def test_mount_when_workspace_already_mounted_elsewhere_returns_workspace_mounted(
    client: Client,
) -> None:
    await create(client, "baseline")
    await mount(client, "baseline", "w1")
    error = await fail(
        client, "mount", "WORKSPACE_MOUNTED", workspace="baseline", slot="w2", reason=LONG_REASON
    )
    assert error["details"]["slot"] == "w1"


@pytest.mark.anyio
async def test_mount_when_slot_holds_other_workspace_returns_slot_occupied(client: Client) -> None:
    await create(client, "one")
    await create(client, "two")
    await mount(client, "one", "w1")
    error = await fail(client, "mount", "SLOT_OCCUPIED", workspace="two", slot="w1", reason=LONG_REASON)
    assert error["details"]["workspace"] == "one"


@pytest.mark.anyio
async def test_mount_when_slot_folder_has_stray_files_refuses_and_keeps_them(
    client: Client, project_root: Path
) -> None:
    await create(client, "baseline")
    stray = project_root / "workspaces" / "w1" / "stray.txt"
    stray.write_text("mine\n", encoding="utf-8")
    error = await fail(client, "mount", "SLOT_OCCUPIED", workspace="baseline", slot="w1", reason=LONG_REASON)
    assert "stray.txt" in error["details"]["files"]
    assert stray.read_text(encoding="utf-8") == "mine\n"


# -- hibernate -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_hibernate_when_slot_dirty_saves_then_empties_slot(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    write(slot, {"late.py": "late work\n"})
    info = await hibernate(client)
    assert info["workspace"] == "baseline"
    assert info["slot"] == "w1"
    assert info["saved_version"]["version"] == "v3"
    assert info["saved_version"]["source"] == "hibernate"
    assert slot.is_dir()
    assert list(slot.iterdir()) == []
    listed = await ok(client, "list_workspaces")
    assert listed["workspaces"][0]["mounted_slot"] is None
    await fail(client, "save_version", "SLOT_EMPTY", slot="w1", message="slot is empty now")


@pytest.mark.anyio
async def test_hibernate_when_slot_clean_saves_nothing(client: Client) -> None:
    await workspace_with_two_versions(client)
    info = await hibernate(client)
    assert info["saved_version"] is None
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_hibernate_then_slot_is_reusable_and_remount_restores_files(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    expected = tree(slot)
    await hibernate(client)
    await create(client, "other")
    other_slot = await mount(client, "other", "w1")
    assert other_slot == slot
    assert tree(other_slot) == {}
    write(other_slot, {"other.py": "other\n"})
    assert (await save(client))["workspace"] == "other"
    await hibernate(client)
    restored = await mount(client, "baseline", "w3")
    assert tree(restored) == expected


@pytest.mark.anyio
async def test_status_when_mounted_slot_folder_was_removed_still_answers_and_nothing_is_lost(
    client: Client,
) -> None:
    slot = await workspace_with_two_versions(client)
    expected = tree(slot)
    shutil.rmtree(slot)
    status = await ok(client, "status")
    assert status["slots"][0]["workspace"] == "baseline"
    assert status["slots"][0]["dirty"] is True
    assert set(statuses(await diff(client, "w1")).values()) == {"deleted"}
    # Rolling back saves the removal as a version first, then brings the files back.
    result = await ok(client, "rollback", slot="w1", version="v2", reason=LONG_REASON)
    assert result["save"]["version"]["version"] == "v4"
    assert tree(slot) == expected
    assert (await ok(client, "status"))["slots"][0]["dirty"] is False


@pytest.mark.anyio
async def test_hibernate_when_slot_empty_returns_slot_empty(client: Client) -> None:
    await fail(client, "hibernate", "SLOT_EMPTY", slot="w2", reason=LONG_REASON)


@pytest.mark.anyio
async def test_inspect_workspace_shows_versions_tags_dirty_state_and_pipeline(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    write(slot, {"pipeline.yaml": PIPELINE})
    await save(client, message="add the pipeline")
    await manage(client, "baseline", "tag", version="v1", tag="first")
    write(slot, {"scratch.txt": "unsaved\n"})

    detail = (await ok(client, "inspect_workspace", name="baseline", include=["pipeline"]))["inspect"]
    assert detail["workspace"]["name"] == "baseline"
    assert detail["workspace"]["mounted_slot"] == "w1"
    assert detail["workspace"]["latest_version"]["version"] == "v3"
    assert detail["dirty"] is True
    assert detail["pipeline"] == PIPELINE
    assert detail["versions_total"] == 3
    assert [(v["version"], v["tags"]) for v in detail["versions"]] == [
        ("v3", []),
        ("v2", []),
        ("v1", ["first"]),
    ]

    plain = (await ok(client, "inspect_workspace", name="w1", version_limit=1, version_offset=1))["inspect"]
    assert plain["pipeline"] is None
    assert [v["version"] for v in plain["versions"]] == ["v2"]

    await hibernate(client)
    unmounted = (await ok(client, "inspect_workspace", name="baseline", include=["pipeline"]))["inspect"]
    assert unmounted["dirty"] is None
    assert unmounted["workspace"]["mounted_slot"] is None
    assert unmounted["pipeline"] == PIPELINE
    assert unmounted["workspace"]["latest_version"]["version"] == "v4"


@pytest.mark.anyio
async def test_inspect_workspace_when_unknown_suggests_the_close_name(client: Client) -> None:
    await create(client, "baseline")
    error = await fail(client, "inspect_workspace", "WORKSPACE_NOT_FOUND", name="baselne")
    assert "did you mean 'baseline'" in error["message"]
    assert error["details"]["existing"] == ["baseline"]
    await fail(client, "inspect_workspace", "INVALID_ARGUMENT", name="baseline", include=["everything"])


# -- delete ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delete_workspace_when_mounted_returns_workspace_mounted(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    error = await fail(
        client, "delete_workspace", "WORKSPACE_MOUNTED", workspace="baseline", reason=LONG_REASON
    )
    assert error["details"]["slot"] == "w1"
    assert "hibernate" in error["remedy"].lower()
    assert tree(slot)
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_delete_workspace_then_name_is_free_and_new_workspace_starts_at_v1(client: Client) -> None:
    await workspace_with_two_versions(client)
    await hibernate(client)
    deleted = (await ok(client, "delete_workspace", workspace="baseline", reason=LONG_REASON))["deleted"]
    assert deleted == {"workspace": "baseline", "versions_kept": 2}
    assert (await ok(client, "list_workspaces"))["total"] == 0
    await fail(client, "inspect_workspace", "WORKSPACE_NOT_FOUND", name="baseline")
    await fail(client, "delete_workspace", "WORKSPACE_NOT_FOUND", workspace="baseline", reason=LONG_REASON)

    reborn = await create(client, "baseline", goal="second life")
    assert reborn["versions"] == 0
    assert reborn["goal"] == "second life"
    slot = await mount(client, "baseline")
    assert tree(slot) == {}
    write(slot, {"fresh.py": "fresh\n"})
    saved = await save(client)
    assert saved["version"]["version"] == "v1"
    assert saved["changed_files"] == ["fresh.py"]
    assert await version_names(client, "baseline", include_pruned=True) == ["v1"]
    assert statuses(await diff(client, "baseline@v1")) == {"fresh.py": "added"}


# -- create from another workspace -----------------------------------------------------------


@pytest.mark.anyio
async def test_create_workspace_from_workspace_starts_with_its_latest_files(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    expected = tree(slot)
    write(slot, {"unsaved.txt": "not part of any version\n"})
    child = await create(client, "child", from_workspace="baseline")
    assert child["parent_workspace"] == "baseline"
    assert child["parent_version"] == "v2"
    assert child["versions"] == 0
    child_slot = await mount(client, "child", "w2")
    assert tree(child_slot) == expected
    # The fork is independent of its parent.
    write(child_slot, {"train.py": "lr = 1.0\n"})
    assert (await save(client, slot="w2"))["version"]["version"] == "v1"
    assert await version_names(client, "baseline") == ["v2", "v1"]
    assert (slot / "train.py").read_text(encoding="utf-8") == "lr = 0.01\nprint('train')\n"


@pytest.mark.anyio
async def test_create_workspace_from_version_starts_with_that_versions_files(client: Client) -> None:
    await workspace_with_two_versions(client)
    await manage(client, "baseline", "tag", version="v1", tag="origin")
    from_number = await create(client, "from-v1", from_workspace="baseline", from_version="v1")
    assert from_number["parent_version"] == "v1"
    assert tree(await mount(client, "from-v1", "w2")) == FILES_V1
    from_tag = await create(client, "from-tag", from_workspace="w1", from_version="origin")
    assert from_tag["parent_workspace"] == "baseline"
    assert tree(await mount(client, "from-tag", "w3")) == FILES_V1


@pytest.mark.anyio
async def test_create_workspace_when_from_version_invalid_refuses_and_creates_nothing(client: Client) -> None:
    await workspace_with_two_versions(client)
    await fail(
        client,
        "create_workspace",
        "INVALID_ARGUMENT",
        name="x",
        goal="g",
        reason=LONG_REASON,
        from_version="v1",
    )
    await fail(
        client,
        "create_workspace",
        "VERSION_NOT_FOUND",
        name="x",
        goal="g",
        reason=LONG_REASON,
        from_workspace="baseline",
        from_version="v5",
    )
    await fail(
        client,
        "create_workspace",
        "WORKSPACE_NOT_FOUND",
        name="x",
        goal="g",
        reason=LONG_REASON,
        from_workspace="nope",
    )
    assert [w["name"] for w in (await ok(client, "list_workspaces"))["workspaces"]] == ["baseline"]
