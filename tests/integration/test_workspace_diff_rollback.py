"""Comparing and restoring versions through real MCP sessions: ``diff`` and ``rollback``."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import (
    FILES_V1,
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
    versions,
    workspace_with_two_versions,
    write,
)

# -- diff ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_diff_when_slot_edited_shows_unsaved_changes_against_last_version(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    await save(client)
    write(slot, {"train.py": "lr = 0.3\nprint('train')\nprint('more')\n", "new.py": "x = 1\n"})
    (slot / "README.md").unlink()

    info = await diff(client, "w1")
    assert info["against"] == "baseline@v1"
    assert "w1" in info["target"]
    assert statuses(info) == {"README.md": "deleted", "new.py": "added", "train.py": "modified"}
    by_path = {f["path"]: f for f in info["files"]}
    assert (by_path["train.py"]["lines_added"], by_path["train.py"]["lines_removed"]) == (2, 1)
    assert (by_path["new.py"]["lines_added"], by_path["new.py"]["lines_removed"]) == (1, 0)
    assert info["files_changed"] == 3
    assert "+lr = 0.3" in info["patch"]
    assert "-lr = 0.1" in info["patch"]
    assert info["truncated"] is False
    # diff only looks: nothing was saved.
    assert await version_names(client, "baseline") == ["v1"]
    # The workspace name of a mounted workspace means its slot.
    assert statuses(await diff(client, "baseline")) == statuses(info)


@pytest.mark.anyio
async def test_diff_when_slot_clean_shows_no_files(client: Client) -> None:
    await workspace_with_two_versions(client)
    info = await diff(client, "w1")
    assert info["files"] == []
    assert info["files_changed"] == 0
    assert info["patch"] == ""


@pytest.mark.anyio
async def test_diff_when_nothing_saved_yet_compares_with_the_start(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    info = await diff(client, "w1")
    assert info["against"] == "baseline (start)"
    assert statuses(info) == {"a.py": "added"}


@pytest.mark.anyio
async def test_diff_between_two_versions_shows_what_changed(client: Client) -> None:
    await workspace_with_two_versions(client)
    info = await diff(client, "baseline@v2", "baseline@v1")
    assert info["target"] == "baseline@v2"
    assert info["against"] == "baseline@v1"
    assert statuses(info) == {"README.md": "deleted", "train.py": "modified"}
    assert "-lr = 0.1" in info["patch"]
    assert "+lr = 0.01" in info["patch"]
    reverse = await diff(client, "baseline@v1", "baseline@v2")
    assert statuses(reverse) == {"README.md": "added", "train.py": "modified"}


@pytest.mark.anyio
async def test_diff_when_version_alone_compares_with_the_version_before(client: Client) -> None:
    await workspace_with_two_versions(client)
    second = await diff(client, "baseline@v2")
    assert second["against"] == "baseline@v1"
    assert statuses(second) == {"README.md": "deleted", "train.py": "modified"}
    first = await diff(client, "baseline@v1")
    assert first["against"] == "baseline (start)"
    assert statuses(first) == {"README.md": "added", "configs/train.yaml": "added", "train.py": "added"}


@pytest.mark.anyio
async def test_diff_when_workspace_unmounted_shows_what_its_last_version_changed(client: Client) -> None:
    await workspace_with_two_versions(client)
    await hibernate(client)
    info = await diff(client, "baseline")
    assert info["target"] == "baseline@v2"
    assert info["against"] == "baseline@v1"
    assert statuses(info) == {"README.md": "deleted", "train.py": "modified"}


@pytest.mark.anyio
async def test_diff_when_refs_are_tags_resolves_them_to_versions(client: Client) -> None:
    await workspace_with_two_versions(client)
    await manage(client, "baseline", "tag", version="v1", tag="first-try")
    await manage(client, "baseline", "tag", version="v2", tag="best.lr")
    info = await diff(client, "baseline@best.lr", "baseline@first-try")
    assert info["target"] == "baseline@v2"
    assert info["against"] == "baseline@v1"
    assert statuses(info) == {"README.md": "deleted", "train.py": "modified"}


@pytest.mark.anyio
async def test_diff_between_workspaces_and_slot_refs(client: Client) -> None:
    await workspace_with_two_versions(client)
    await create(client, "other")
    slot = await mount(client, "other", "w2")
    write(slot, {"train.py": "lr = 0.01\nprint('train')\n", "configs/train.yaml": "epochs: 1\n"})
    info = await diff(client, "w2", "baseline")
    assert info["files"] == []
    via_slot = await diff(client, "w1@v1", "w2")
    assert statuses(via_slot) == {"README.md": "added", "train.py": "modified"}


@pytest.mark.anyio
async def test_diff_when_ref_unknown_returns_precise_error(client: Client) -> None:
    await workspace_with_two_versions(client)
    missing = await fail(client, "diff", "WORKSPACE_NOT_FOUND", target="baselin")
    assert "did you mean 'baseline'" in missing["message"]
    no_version = await fail(client, "diff", "VERSION_NOT_FOUND", target="baseline@v9")
    assert no_version["details"]["latest"] == "v2"
    await fail(client, "diff", "TAG_NOT_FOUND", target="baseline@nosuchtag")
    await fail(client, "diff", "SLOT_EMPTY", target="w3")


# -- rollback --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rollback_when_slot_clean_records_new_version_with_old_files(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    result = await ok(client, "rollback", slot="w1", version="v1", reason=LONG_REASON)
    saved = result["save"]
    assert saved["created"] is True
    assert saved["version"]["version"] == "v3"
    assert saved["version"]["source"] == "rollback"
    assert "v1" in saved["version"]["message"]
    assert sorted(saved["changed_files"]) == ["README.md", "train.py"]
    assert tree(slot) == FILES_V1
    assert (await diff(client, "w1"))["files"] == []
    assert (await diff(client, "baseline@v3", "baseline@v1"))["files"] == []
    # Nothing is lost: v2 is still there.
    assert await version_names(client, "baseline") == ["v3", "v2", "v1"]


@pytest.mark.anyio
async def test_rollback_when_slot_has_unsaved_changes_saves_them_first(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    write(slot, {"experiment.py": "unsaved idea\n"})
    result = await ok(client, "rollback", slot="w1", version="v1", reason=LONG_REASON)
    assert result["save"]["version"]["version"] == "v4"
    page = await versions(client, "baseline")
    by_name = {v["version"]: v for v in page["versions"]}
    assert by_name["v3"]["source"] == "save"
    assert "rollback" in by_name["v3"]["message"].lower()
    assert by_name["v4"]["source"] == "rollback"
    assert "experiment.py" not in tree(slot)
    assert tree(slot) == FILES_V1
    # The unsaved idea is kept in v3.
    assert statuses(await diff(client, "baseline@v3", "baseline@v2")) == {"experiment.py": "added"}


@pytest.mark.anyio
async def test_rollback_when_target_is_tag_uses_that_version(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    await manage(client, "baseline", "tag", version="v1", tag="good")
    result = await ok(client, "rollback", slot="w1", version="good", reason=LONG_REASON)
    assert result["save"]["version"]["version"] == "v3"
    assert tree(slot) == FILES_V1


@pytest.mark.anyio
async def test_rollback_when_version_missing_or_reason_short_refuses_without_change(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    before = tree(slot)
    await fail(client, "rollback", "VERSION_NOT_FOUND", slot="w1", version="v7", reason=LONG_REASON)
    await fail(client, "rollback", "REASON_REQUIRED", slot="w1", version="v1", reason="undo")
    await fail(client, "rollback", "INVALID_ARGUMENT", slot="w1", version="v0", reason=LONG_REASON)
    assert tree(slot) == before
    assert await version_names(client, "baseline") == ["v2", "v1"]
