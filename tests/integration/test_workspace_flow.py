"""The workspace flow through real MCP sessions: workspaces, versions, memory, config and errors.

Every test drives the server with an in-memory ``mcp.Client`` (both protocol eras, see the
``client`` fixture) against a real project: plain files in slot folders, the hidden git store
and the SQLite database. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON, call, structured

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")

# -- helpers ---------------------------------------------------------------------------------


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result."""
    result = await call(client, tool, **arguments)
    assert result["success"] is True, result
    return result


async def fail(client: Client, tool: str, code: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must fail with ``code``; check the error contract and return the error."""
    raw = await client.call_tool(tool, arguments)
    assert raw.is_error is True, raw
    error = check_error_shape(structured(raw))
    assert error["code"] == code, error
    return error


def check_error_shape(result: dict[str, Any]) -> dict[str, Any]:
    """The contract of every failure: success false plus code/message/details/remedy."""
    assert result["success"] is False
    error: dict[str, Any] = result["error"]
    assert set(error) == {"code", "message", "details", "remedy"}
    assert UPPER_SNAKE.fullmatch(error["code"]), error["code"]
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert isinstance(error["details"], dict)
    assert isinstance(error["remedy"], str)
    assert error["remedy"].strip()
    assert "Traceback" not in error["message"]
    return error


async def create(
    client: Client, name: str, goal: str = "find a better model", **extra: Any
) -> dict[str, Any]:
    result = await ok(client, "create_workspace", name=name, goal=goal, reason=LONG_REASON, **extra)
    workspace: dict[str, Any] = result["workspace"]
    return workspace


async def mount(client: Client, workspace: str, slot: str = "w1") -> Path:
    result = await ok(client, "mount", workspace=workspace, slot=slot, reason=LONG_REASON)
    return Path(result["mount"]["slot_path"])


async def save(client: Client, slot: str = "w1", message: str = "a step forward") -> dict[str, Any]:
    result = await ok(client, "save_version", slot=slot, message=message)
    saved: dict[str, Any] = result["save"]
    return saved


async def hibernate(client: Client, slot: str = "w1") -> dict[str, Any]:
    result = await ok(client, "hibernate", slot=slot, reason=LONG_REASON)
    info: dict[str, Any] = result["hibernate"]
    return info


async def versions(client: Client, workspace: str, **extra: Any) -> dict[str, Any]:
    result = await ok(client, "manage_versions", workspace=workspace, action="list", **extra)
    page: dict[str, Any] = result["versions"]
    return page


async def version_names(client: Client, workspace: str, include_pruned: bool = False) -> list[str]:
    page = await versions(client, workspace, include_pruned=include_pruned, limit=200)
    return [v["version"] for v in page["versions"]]


async def manage(client: Client, workspace: str, action: str, **extra: Any) -> dict[str, Any]:
    result = await ok(
        client, "manage_versions", workspace=workspace, action=action, reason=LONG_REASON, **extra
    )
    page: dict[str, Any] = result["versions"]
    return page


async def diff(client: Client, target: str, against: str | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"target": target}
    if against is not None:
        arguments["against"] = against
    result = await ok(client, "diff", **arguments)
    info: dict[str, Any] = result["diff"]
    return info


def statuses(diff_info: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["status"] for f in diff_info["files"]}


def write(folder: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def tree(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (relative path → text); links shown as ``-> target``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_text(encoding="utf-8")
    return found


async def audit(client: Client, **extra: Any) -> list[dict[str, Any]]:
    result = await ok(client, "get_audit_log", limit=200, **extra)
    entries: list[dict[str, Any]] = result["entries"]
    return entries


async def read_resource(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


def state_md(project_root: Path) -> str:
    return (project_root / "STATE.md").read_text(encoding="utf-8")


FILES_V1 = {
    "train.py": "lr = 0.1\nprint('train')\n",
    "README.md": "notes\n",
    "configs/train.yaml": "epochs: 1\n",
}


async def workspace_with_two_versions(client: Client, name: str = "baseline") -> Path:
    """A mounted workspace (slot w1) with v1 = FILES_V1 and v2 = lr changed, README removed."""
    await create(client, name)
    slot = await mount(client, name)
    write(slot, FILES_V1)
    assert (await save(client, message="first version"))["version"]["version"] == "v1"
    write(slot, {"train.py": "lr = 0.01\nprint('train')\n"})
    (slot / "README.md").unlink()
    assert (await save(client, message="lower the learning rate"))["version"]["version"] == "v2"
    return slot


# -- create, mount, save ---------------------------------------------------------------------


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


@pytest.mark.anyio
async def test_save_version_when_files_written_numbers_versions_v1_then_v2(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    first = await save(client, message="first version")
    assert first["created"] is True
    assert first["workspace"] == "baseline"
    assert first["version"]["version"] == "v1"
    assert first["version"]["message"] == "first version"
    assert first["version"]["source"] == "save"
    assert first["files_changed"] == 3
    assert sorted(first["changed_files"]) == ["README.md", "configs/train.yaml", "train.py"]
    assert re.fullmatch(r"[0-9a-f]{12}", first["version"]["commit"])

    write(slot, {"train.py": "lr = 0.5\n"})
    second = await save(client, message="bigger learning rate")
    assert second["created"] is True
    assert second["version"]["version"] == "v2"
    assert second["changed_files"] == ["train.py"]
    assert second["version"]["commit"] != first["version"]["commit"]
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_save_version_when_nothing_changed_returns_created_false(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    first = await save(client, message="first version")
    again = await save(client, message="nothing new")
    assert again["created"] is False
    assert again["files_changed"] == 0
    assert again["changed_files"] == []
    assert again["version"]["version"] == "v1"
    assert again["version"]["commit"] == first["version"]["commit"]
    assert await version_names(client, "baseline") == ["v1"]


@pytest.mark.anyio
async def test_save_version_when_slot_empty_and_never_saved_returns_created_false(client: Client) -> None:
    await create(client, "baseline")
    await mount(client, "baseline")
    result = await save(client, message="nothing at all")
    assert result["created"] is False
    assert result["version"] is None
    assert await version_names(client, "baseline") == []


@pytest.mark.anyio
async def test_save_version_when_file_deleted_in_slot_removes_it_from_next_version(client: Client) -> None:
    slot = await workspace_with_two_versions(client)
    changes = await diff(client, "baseline@v2", "baseline@v1")
    assert statuses(changes) == {"README.md": "deleted", "train.py": "modified"}
    await hibernate(client)
    slot = await mount(client, "baseline", "w2")
    assert tree(slot) == {"configs/train.yaml": "epochs: 1\n", "train.py": "lr = 0.01\nprint('train')\n"}


@pytest.mark.anyio
async def test_save_version_when_empty_directory_added_creates_no_version(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    await save(client)
    (slot / "empty_dir").mkdir()
    assert (await save(client))["created"] is False


@pytest.mark.anyio
async def test_save_version_when_slot_not_mounted_returns_slot_empty(client: Client) -> None:
    error = await fail(client, "save_version", "SLOT_EMPTY", slot="w3", message="nothing mounted here")
    assert error["details"]["slot"] == "w3"


@pytest.mark.anyio
async def test_save_version_when_slot_unknown_returns_slot_not_found_with_suggestion(client: Client) -> None:
    error = await fail(client, "save_version", "SLOT_NOT_FOUND", slot="w4", message="no such slot")
    assert error["details"]["slots"] == ["w1", "w2", "w3"]


@pytest.mark.anyio
async def test_save_version_when_symlink_points_outside_slot_refuses_and_creates_no_version(
    client: Client, tmp_path: Path
) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    await save(client)
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("private\n", encoding="utf-8")
    (slot / "leak.txt").symlink_to(secret)
    write(slot, {"train.py": "lr = 0.2\n"})

    error = await fail(client, "save_version", "UNSAFE_SYMLINK", slot="w1", message="would leak a file")
    assert error["details"]["path"] == "leak.txt"
    assert "nothing was saved" in error["message"]
    assert await version_names(client, "baseline") == ["v1"]
    # Hibernate saves first, so it is refused too and the slot keeps its files.
    await fail(client, "hibernate", "UNSAFE_SYMLINK", slot="w1", reason=LONG_REASON)
    status = await ok(client, "status")
    assert status["slots"][0]["workspace"] == "baseline"
    assert (slot / "train.py").read_text(encoding="utf-8") == "lr = 0.2\n"

    (slot / "leak.txt").unlink()
    saved = await save(client)
    assert saved["version"]["version"] == "v2"
    assert saved["changed_files"] == ["train.py"]


@pytest.mark.anyio
async def test_save_version_when_symlinked_directory_points_outside_refuses(
    client: Client, tmp_path: Path
) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "data.csv").write_text("a,b\n", encoding="utf-8")
    (slot / "data").symlink_to(outside, target_is_directory=True)
    await fail(client, "save_version", "UNSAFE_SYMLINK", slot="w1", message="would follow a link out")
    assert await version_names(client, "baseline") == []


@pytest.mark.anyio
async def test_save_version_when_symlink_points_inside_slot_keeps_it_as_link(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, FILES_V1)
    (slot / "current.yaml").symlink_to("configs/train.yaml")
    saved = await save(client)
    assert "current.yaml" in saved["changed_files"]
    await hibernate(client)
    slot = await mount(client, "baseline")
    assert (slot / "current.yaml").is_symlink()
    assert os.readlink(slot / "current.yaml") == "configs/train.yaml"
    assert (slot / "current.yaml").read_text(encoding="utf-8") == "epochs: 1\n"


@pytest.mark.anyio
async def test_save_version_when_goldfishignore_lists_patterns_leaves_those_files_out(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(
        slot,
        {
            ".goldfishignore": "data/\n*.ckpt\n",
            "train.py": "print('x')\n",
            "data/big.csv": "1,2,3\n",
            "model.ckpt": "weights",
            "sub/inner.ckpt": "weights",
            "__pycache__/train.cpython-311.pyc": "bytecode",
        },
    )
    saved = await save(client)
    assert sorted(saved["changed_files"]) == [".goldfishignore", "train.py"]
    assert (await diff(client, "w1"))["files"] == []

    info = await hibernate(client)
    assert info["saved_version"] is None
    removed = set(info["removed_unversioned"])
    assert {"data/", "model.ckpt", "__pycache__/"} <= removed
    slot = await mount(client, "baseline")
    assert tree(slot) == {".goldfishignore": "data/\n*.ckpt\n", "train.py": "print('x')\n"}


@pytest.mark.anyio
async def test_hibernate_when_ignored_link_points_outside_removes_link_but_not_its_target(
    client: Client, tmp_path: Path
) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "train.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {".goldfishignore": "data\n", "train.py": "print('x')\n"})
    (slot / "data").symlink_to(datasets, target_is_directory=True)
    saved = await save(client)
    assert sorted(saved["changed_files"]) == [".goldfishignore", "train.py"]
    info = await hibernate(client)
    assert "data" in info["removed_unversioned"]
    assert list(slot.iterdir()) == []
    assert (datasets / "train.csv").read_text(encoding="utf-8") == "x,y\n1,2\n"


@pytest.mark.anyio
async def test_save_version_when_file_over_size_limit_returns_file_too_large(project_root: Path) -> None:
    config = project_root / "goldfish.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "max_file_size_mb: 1\n", encoding="utf-8")
    async with Client(server_for(project_root)) as client:
        await create(client, "baseline")
        slot = await mount(client, "baseline")
        (slot / "huge.bin").write_bytes(b"\0" * (1024 * 1024 + 1))
        write(slot, {"small.py": "ok\n"})
        error = await fail(client, "save_version", "FILE_TOO_LARGE", slot="w1", message="too big to keep")
        assert error["details"]["path"] == "huge.bin"
        assert error["details"]["limit"] == 1024 * 1024
        assert await version_names(client, "baseline") == []


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


# -- manage_versions -------------------------------------------------------------------------


async def workspace_with_versions(client: Client, count: int, name: str = "baseline") -> Path:
    await create(client, name)
    slot = await mount(client, name)
    for number in range(1, count + 1):
        write(slot, {"step.txt": f"{number}\n"})
        assert (await save(client, message=f"step {number}"))["version"]["version"] == f"v{number}"
    return slot


@pytest.mark.anyio
async def test_manage_versions_list_returns_newest_first_with_paging(client: Client) -> None:
    await workspace_with_versions(client, 5)
    page = await versions(client, "baseline", limit=2, offset=1)
    assert [v["version"] for v in page["versions"]] == ["v4", "v3"]
    assert page["total"] == 5
    assert page["action"] == "list"
    first = page["versions"][0]
    assert first["message"] == "step 4"
    assert first["tags"] == []
    assert first["pruned"] is False
    assert first["age"].endswith("ago")
    await fail(client, "manage_versions", "INVALID_ARGUMENT", workspace="baseline", action="list", limit=0)
    await fail(client, "manage_versions", "INVALID_ARGUMENT", workspace="baseline", action="list", limit=201)


@pytest.mark.anyio
async def test_manage_versions_when_workspace_given_as_slot_resolves_it(client: Client) -> None:
    await workspace_with_versions(client, 2)
    page = await versions(client, "w1")
    assert page["workspace"] == "baseline"
    assert page["total"] == 2


@pytest.mark.anyio
async def test_manage_versions_tag_and_untag_show_in_list(client: Client) -> None:
    await workspace_with_versions(client, 3)
    tagged = await manage(client, "baseline", "tag", version="v2", tag="best")
    assert tagged["changed"] == ["v2"]
    by_name = {v["version"]: v for v in tagged["versions"]}
    assert by_name["v2"]["tags"] == ["best"]
    await manage(client, "baseline", "tag", version="v2", tag="also-best")
    page = await versions(client, "baseline")
    assert {v["version"]: v["tags"] for v in page["versions"]}["v2"] == ["also-best", "best"]

    untagged = await manage(client, "baseline", "untag", tag="best")
    assert untagged["changed"] == ["v2"]
    assert {v["version"]: v["tags"] for v in untagged["versions"]}["v2"] == ["also-best"]


@pytest.mark.anyio
async def test_manage_versions_when_tag_used_or_missing_refuses(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "tag", version="v1", tag="best")
    used = await fail(
        client,
        "manage_versions",
        "TAG_EXISTS",
        workspace="baseline",
        action="tag",
        version="v2",
        tag="best",
        reason=LONG_REASON,
    )
    assert used["details"]["version"] == "v1"
    await fail(
        client,
        "manage_versions",
        "TAG_NOT_FOUND",
        workspace="baseline",
        action="untag",
        tag="nope",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "VERSION_NOT_FOUND",
        workspace="baseline",
        action="tag",
        version="v9",
        tag="x",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="tag",
        version="v1",
        tag="bad tag",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="tag",
        tag="x",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_when_changing_without_reason_returns_reason_required(client: Client) -> None:
    await workspace_with_versions(client, 1)
    for action, extra in (("tag", {"version": "v1", "tag": "t"}), ("prune", {"version": "v1"})):
        await fail(client, "manage_versions", "REASON_REQUIRED", workspace="baseline", action=action, **extra)
    page = await versions(client, "baseline")
    assert page["versions"][0]["tags"] == []
    assert page["versions"][0]["pruned"] is False


@pytest.mark.anyio
async def test_manage_versions_prune_hides_version_and_unprune_restores_it(client: Client) -> None:
    await workspace_with_versions(client, 3)
    pruned = await manage(client, "baseline", "prune", version="v2")
    assert pruned["changed"] == ["v2"]
    assert [v["version"] for v in pruned["versions"]] == ["v3", "v1"]
    assert pruned["total"] == 2
    everything = await versions(client, "baseline", include_pruned=True)
    assert [(v["version"], v["pruned"]) for v in everything["versions"]] == [
        ("v3", False),
        ("v2", True),
        ("v1", False),
    ]
    assert everything["total"] == 3
    # A pruned version can still be read.
    assert (await diff(client, "baseline@v2"))["against"] == "baseline@v1"

    restored = await manage(client, "baseline", "unprune", version="v2")
    assert restored["changed"] == ["v2"]
    assert await version_names(client, "baseline") == ["v3", "v2", "v1"]


@pytest.mark.anyio
async def test_manage_versions_prune_when_version_tagged_returns_version_tagged(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "tag", version="v1", tag="keep")
    error = await fail(
        client,
        "manage_versions",
        "VERSION_TAGGED",
        workspace="baseline",
        action="prune",
        version="v1",
        reason=LONG_REASON,
    )
    assert error["details"] == {"version": "v1", "tags": ["keep"]}
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_manage_versions_prune_range_skips_tagged_versions(client: Client) -> None:
    await workspace_with_versions(client, 5)
    await manage(client, "baseline", "tag", version="v3", tag="keep")
    result = await manage(client, "baseline", "prune", from_version="v2", to_version="v4")
    assert sorted(result["changed"]) == ["v2", "v4"]
    assert result["skipped"] == ["v3"]
    assert await version_names(client, "baseline") == ["v5", "v3", "v1"]
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="prune",
        from_version="v4",
        to_version="v2",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="prune",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_prune_before_tag_hides_older_untagged_versions(client: Client) -> None:
    await workspace_with_versions(client, 5)
    await manage(client, "baseline", "tag", version="v2", tag="milestone")
    await manage(client, "baseline", "tag", version="v4", tag="release")
    result = await manage(client, "baseline", "prune_before_tag", tag="release")
    assert sorted(result["changed"]) == ["v1", "v3"]
    assert await version_names(client, "baseline") == ["v5", "v4", "v2"]
    await fail(
        client,
        "manage_versions",
        "TAG_NOT_FOUND",
        workspace="baseline",
        action="prune_before_tag",
        tag="nope",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_tag_on_pruned_version_makes_it_visible_again(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "prune", version="v1")
    await manage(client, "baseline", "tag", version="v1", tag="rescued")
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_save_version_after_prunes_continues_numbering(client: Client) -> None:
    slot = await workspace_with_versions(client, 3)
    await manage(client, "baseline", "prune", from_version="v1", to_version="v3")
    assert await version_names(client, "baseline") == []
    write(slot, {"step.txt": "4\n"})
    saved = await save(client)
    assert saved["version"]["version"] == "v4"
    assert await version_names(client, "baseline") == ["v4"]
    assert await version_names(client, "baseline", include_pruned=True) == ["v4", "v3", "v2", "v1"]


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


# -- inspect ---------------------------------------------------------------------------------

PIPELINE = "name: demo\nstages:\n  - name: train\n    outputs:\n      model:\n        type: file\n"


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


# -- errors ----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("create_workspace", {"name": "bad name!", "goal": "g", "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "ok", "goal": "g", "reason": "too short"}, "REASON_REQUIRED"),
    ("create_workspace", {"name": "ok", "goal": "g"}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "ok", "goal": ["not", "text"], "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "baseline", "goal": "g", "reason": LONG_REASON}, "WORKSPACE_EXISTS"),
    ("mount", {"workspace": "nope", "slot": "w2", "reason": LONG_REASON}, "WORKSPACE_NOT_FOUND"),
    ("mount", {"workspace": "baseline", "slot": "w9", "reason": LONG_REASON}, "SLOT_NOT_FOUND"),
    ("mount", {"workspace": "baseline", "slot": "../etc", "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("save_version", {"slot": "w2", "message": "m"}, "SLOT_EMPTY"),
    ("save_version", {"slot": "w1", "message": ""}, "INVALID_ARGUMENT"),
    ("hibernate", {"slot": "w3", "reason": LONG_REASON}, "SLOT_EMPTY"),
    ("rollback", {"slot": "w1", "version": "v5", "reason": LONG_REASON}, "VERSION_NOT_FOUND"),
    ("diff", {"target": "nope@v1"}, "WORKSPACE_NOT_FOUND"),
    ("diff", {"target": "x" * 300, "against": "w1"}, "INVALID_ARGUMENT"),
    ("manage_versions", {"workspace": "baseline", "action": "explode"}, "INVALID_ARGUMENT"),
    (
        "manage_versions",
        {"workspace": "baseline", "action": "untag", "tag": "t", "reason": LONG_REASON},
        "TAG_NOT_FOUND",
    ),
    ("inspect_workspace", {"name": "nope"}, "WORKSPACE_NOT_FOUND"),
    ("list_workspaces", {"limit": 500}, "INVALID_ARGUMENT"),
    ("list_workspaces", {"offset": -1}, "INVALID_ARGUMENT"),
    ("delete_workspace", {"workspace": "baseline", "reason": LONG_REASON}, "WORKSPACE_MOUNTED"),
    ("get_audit_log", {"limit": "many"}, "INVALID_ARGUMENT"),
    ("log_thought", {"thought": "x" * 9000}, "INVALID_ARGUMENT"),
    ("validate_config", {"workspace": "nope"}, "WORKSPACE_NOT_FOUND"),
]


@pytest.mark.anyio
async def test_tool_error_result_has_code_message_details_remedy_and_is_error(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    await save(client)
    for tool, arguments, code in ERROR_CASES:
        try:
            await fail(client, tool, code, **arguments)
        except AssertionError as exc:
            raise AssertionError(f"{tool}({arguments}) should fail with {code}: {exc}") from None
    # The server keeps answering after every error, and nothing was changed by them.
    assert (await ok(client, "status"))["project"]["name"] == "testproj"
    assert await version_names(client, "baseline") == ["v1"]
    assert [w["name"] for w in (await ok(client, "list_workspaces"))["workspaces"]] == ["baseline"]


@pytest.mark.anyio
async def test_tool_error_when_input_is_huge_keeps_the_message_short(client: Client) -> None:
    huge = "x" * 50_000
    await create(client, "baseline")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("create_workspace", "INVALID_ARGUMENT", {"name": huge, "goal": "g", "reason": LONG_REASON}),
        ("mount", "WORKSPACE_NOT_FOUND", {"workspace": huge, "slot": "w1", "reason": LONG_REASON}),
        ("mount", "INVALID_ARGUMENT", {"workspace": "baseline", "slot": huge, "reason": LONG_REASON}),
        ("log_thought", "WORKSPACE_NOT_FOUND", {"thought": "about a huge name", "workspace": huge}),
        ("inspect_workspace", "WORKSPACE_NOT_FOUND", {"name": huge}),
        ("manage_versions", "WORKSPACE_NOT_FOUND", {"workspace": huge, "action": "list"}),
    ]
    for tool, code, arguments in cases:
        error = await fail(client, tool, code, **arguments)
        assert len(error["message"]) < 1000, tool
        assert len(json.dumps(error["details"])) < 1000, tool


# -- orientation -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_dashboard_lists_failed_calls_as_alerts_and_workspaces_by_activity(client: Client) -> None:
    await create(client, "older")
    await create(client, "newer")
    slot = await mount(client, "newer")
    write(slot, {"a.py": "a\n"})
    await save(client)
    await fail(client, "hibernate", "SLOT_EMPTY", slot="w2", reason=LONG_REASON)
    dashboard = (await ok(client, "dashboard"))["dashboard"]
    assert dashboard["project"]["workspaces"] == 2
    assert [a["kind"] for a in dashboard["alerts"]] == ["failed_call"]
    assert "hibernate" in dashboard["alerts"][0]["message"]
    assert "SLOT_EMPTY" in dashboard["alerts"][0]["message"]
    assert dashboard["workspaces_by_activity"] == ["newer", "older"]
    assert dashboard["slots"][0]["workspace"] == "newer"


@pytest.mark.anyio
async def test_goldfish_version_reports_package_schema_and_project(
    client: Client, project_root: Path
) -> None:
    import goldfish

    info = await ok(client, "goldfish_version")
    assert info["package_version"] == goldfish.__version__
    assert info["schema_version"] >= 1
    assert isinstance(info["backends"], list)
    assert info["project_root"] == str(project_root.resolve())


@pytest.mark.anyio
async def test_list_tools_marks_read_only_and_destructive_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in (
        "status",
        "dashboard",
        "goldfish_version",
        "diff",
        "list_workspaces",
        "inspect_workspace",
        "get_workspace_thoughts",
        "get_audit_log",
        "validate_config",
    ):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True, name
    for name in ("delete_workspace", "rollback", "manage_versions"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is False, name
        assert annotations.destructive_hint is True, name
    for name, tool in tools.items():
        properties = tool.input_schema.get("properties", {})
        if name in {"create_workspace", "mount", "hibernate", "rollback", "delete_workspace"}:
            assert "reason" in properties, name
            assert "reason" in tool.input_schema.get("required", []), name


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
