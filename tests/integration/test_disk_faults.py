"""A read-only or full project disk: real mounts, real MCP sessions, real git and SQLite.

Every write tool answers a structured error naming the cause (never INTERNAL); read tools keep
answering; and git and the database agree at once, so the first save after the disk recovers
creates the next version with the change in it.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from goldfish.context import ServerContext
from goldfish.errors import GoldfishError
from goldfish.project import initialize_project
from goldfish.server.app import server_for
from tests.conftest import LONG_REASON, call, set_finalization_gate, use_backend
from tests.integration.pipeline_fixtures import RESULTS_SPEC, ok, workspace_in_slot, write_pipeline
from tests.mount_support import fill, read_only, require_mounts, tmpfs

DISK_CODES = {"DISK_READ_ONLY", "DISK_FULL"}
WRITE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("save_version", {"slot": "w1", "message": "a save while the disk is unwell"}),
    ("create_workspace", {"name": "other", "goal": "another idea", "reason": LONG_REASON}),
    (
        "manage_versions",
        {"workspace": "ws", "action": "tag", "version": "v1", "tag": "best", "reason": LONG_REASON},
    ),
    ("log_thought", {"thought": "noting something while the disk is unwell", "workspace": "ws"}),
    ("run", {"workspace": "ws", "reason": LONG_REASON, "results_spec": RESULTS_SPEC}),
    ("hibernate", {"slot": "w1", "reason": LONG_REASON}),
]
ONE_STAGE = "stages:\n  - name: train\n    outputs:\n      model: {type: file}\n"


@pytest.fixture
def mounts(tmp_path: Path) -> None:
    require_mounts(tmp_path)


async def first_version_and_an_edit(client: Client) -> Path:
    """Workspace ``ws`` in w1 saved as v1 (lr = 0.1), then edited (lr = 0.2) without saving."""
    slot = await workspace_in_slot(client, "ws")
    write_pipeline(slot, ONE_STAGE)
    (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
    await ok(client, "save_version", slot="w1", message="the first learning rate")
    (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")
    return slot


def store_versions(root: Path, workspace: str) -> list[int]:
    """Version numbers the store has tags for."""
    out = subprocess.run(
        [
            "git",
            "--git-dir",
            str(root / ".goldfish" / "dev-repo"),
            "for-each-ref",
            "--format=%(refname:strip=2)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    prefix = f"{workspace}-v"
    return sorted(int(name[len(prefix) :]) for name in out.split() if name.startswith(prefix))


def database_versions(root: Path, workspace: str) -> list[int]:
    conn = sqlite3.connect(root / ".goldfish" / "goldfish.db")
    try:
        rows = conn.execute(
            "SELECT v.version_num FROM workspace_versions v JOIN workspaces w ON w.id = v.workspace_id"
            " WHERE w.name = ? ORDER BY v.version_num",
            (workspace,),
        ).fetchall()
    finally:
        conn.close()
    return [number for (number,) in rows]


def assert_store_and_database_agree(root: Path, workspace: str) -> None:
    assert store_versions(root, workspace) == database_versions(root, workspace)
    checked = subprocess.run(
        ["git", "--git-dir", str(root / ".goldfish" / "dev-repo"), "fsck", "--strict"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def call_every_write_tool(client: Client) -> dict[str, dict[str, Any]]:
    return {tool: await call(client, tool, **arguments) for tool, arguments in WRITE_CALLS}


def assert_refusals_name_the_cause(results: dict[str, dict[str, Any]], code: str) -> None:
    for tool, result in results.items():
        if not result["success"]:
            assert result["error"]["code"] in DISK_CODES, (tool, result["error"])
            assert result["error"]["remedy"], tool
    assert results["save_version"]["error"]["code"] == code


async def assert_next_save_creates_v2(client: Client, root: Path, slot: Path) -> None:
    (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")  # the edit, whatever happened
    saved = await ok(client, "save_version", slot="w1", message="the second learning rate")
    assert saved["save"]["created"] is True, saved
    assert saved["save"]["version"]["version"] == "v2"
    diff = await ok(client, "diff", target="ws@v2", against="ws@v1")
    assert "train.py" in [f["path"] for f in diff["diff"]["files"]]
    assert "+lr = 0.2" in diff["diff"]["patch"]
    assert_store_and_database_agree(root, "ws")


@pytest.mark.anyio
async def test_write_tools_when_project_disk_is_read_only_answer_disk_read_only_and_recover(
    mounts: None, project_root: Path
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await first_version_and_an_edit(client)

        with read_only(project_root):
            results = await call_every_write_tool(client)
            status = await ok(client, "status")
            listed = await ok(client, "manage_versions", workspace="ws", action="list")

        assert_refusals_name_the_cause(results, "DISK_READ_ONLY")
        assert "read-only" in results["save_version"]["error"]["message"]
        assert status["success"] is True
        assert [v["version"] for v in listed["versions"]["versions"]] == ["v1"]
        assert_store_and_database_agree(project_root, "ws")
        if results["hibernate"]["success"]:  # pragma: no cover - hibernate needs the disk
            await ok(client, "mount", workspace="ws", slot="w1", reason=LONG_REASON)
        await assert_next_save_creates_v2(client, project_root, slot)


@pytest.fixture
async def project_on_small_disk(mounts: None, tmp_path: Path) -> AsyncIterator[Path]:
    """A project on its own 24 MiB tmpfs (unmounted afterwards)."""
    with tmpfs(tmp_path / "disk", 24) as disk:
        root = disk / "project"
        initialize_project(str(root), "small")
        set_finalization_gate(root, enabled=False)
        use_backend(root, "process")
        yield root


@pytest.mark.anyio
async def test_write_tools_when_project_disk_is_full_answer_disk_full_and_recover(
    project_on_small_disk: Path,
) -> None:
    root = project_on_small_disk
    async with Client(server_for(root), mode="legacy") as client:
        slot = await first_version_and_an_edit(client)
        (slot / "data.txt").write_text("x\n" * 5_000, encoding="utf-8")  # more to store
        filler = fill(root.parent)

        results = await call_every_write_tool(client)
        status = await ok(client, "status")
        filler.unlink()

        assert_refusals_name_the_cause(results, "DISK_FULL")
        assert "full" in results["save_version"]["error"]["message"]
        assert status["success"] is True
        assert_store_and_database_agree(root, "ws")
        if results["hibernate"]["success"]:
            await ok(client, "mount", workspace="ws", slot="w1", reason=LONG_REASON)
        await assert_next_save_creates_v2(client, root, slot)


def test_save_when_database_refuses_the_version_row_leaves_no_version_in_the_store(
    mounts: None, context: ServerContext
) -> None:
    """Git took the save (commit, tag) but the database did not: the store is put back at once."""
    context.workspaces.create("ws", "survive a read-only database")
    context.workspaces.mount("ws", "w1")
    slot = context.core.slot_path("w1")
    (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
    context.versions.save("w1", "the first learning rate")
    (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")
    root = context.paths.root
    context.db.close()  # the next connection opens through the read-only mount

    with read_only(context.paths.database):
        with pytest.raises(GoldfishError) as refused:
            context.versions.save("w1", "the second learning rate")
        context.db.close()
    assert refused.value.code == "DISK_READ_ONLY"

    assert store_versions(root, "ws") == database_versions(root, "ws") == [1]
    assert (
        context.repo.branch_head("ws") == context.core.version(context.core.workspace("ws"), "v1").commit_sha
    )
    saved = context.versions.save("w1", "the second learning rate")
    assert saved.created is True
    assert saved.version is not None
    assert saved.version.version == "v2"
    assert saved.version.message == "the second learning rate"
    assert saved.changed_files == ["train.py"]
    assert store_versions(root, "ws") == database_versions(root, "ws") == [1, 2]
