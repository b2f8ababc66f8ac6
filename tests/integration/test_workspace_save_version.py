"""Saving versions through real MCP sessions: numbering, deletions, links, ignore files, size limits."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.integration.workspace_support import (
    FILES_V1,
    create,
    diff,
    fail,
    hibernate,
    mount,
    ok,
    save,
    statuses,
    tree,
    version_names,
    workspace_with_two_versions,
    write,
)


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
