"""Backups through the MCP tools: create, list, restore (into a folder and in place), retention, GCS.

Real git, SQLite, stage processes and (for gs://) the GCS emulator; every check reads what the
restored project shows through a fresh MCP session on it.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from mcp import Client

from goldfish.backups.models import BackupCorruptError
from goldfish.context import ServerContext
from goldfish.hashing import hash_file
from goldfish.server.app import server_for
from tests.conftest import LONG_REASON
from tests.fakes.gcs_emulator import GcsBucket
from tests.integration.pipeline_fixtures import (
    TWO_STAGES,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
    write_pipeline,
)

pytestmark = pytest.mark.anyio
SECRET = "s3cr3t-token-value-never-in-backups"  # noqa: S105 - a fake secret to look for


def configure_backup(root: Path, **settings: Any) -> None:
    """Append a ``backup:`` section to goldfish.yaml."""
    lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in settings.items())
    with (root / "goldfish.yaml").open("a", encoding="utf-8") as handle:
        handle.write(f"backup:\n{lines}")


async def project_with_history(client: Client) -> Path:
    """A workspace with a finished run, a second version, a tagged version and a tagged record."""
    slot = await workspace_in_slot(client, "base")
    write_pipeline(slot, TWO_STAGES, {"prep": {"metrics": 3}, "train": {"metrics": 4}})
    run = await start_run(client, wait=True)
    assert run["state"] == "completed", run
    (slot / "notes.md").write_text("second version\n", encoding="utf-8")
    await ok(client, "save_version", slot="w1", message="notes about the first run")
    await ok(
        client,
        "manage_versions",
        workspace="base",
        action="tag",
        version="v2",
        tag="keep",
        reason=LONG_REASON,
    )
    await ok(client, "tag_record", ref=run["pipeline_run_id"], tag="first", reason=LONG_REASON)
    (slot / "unsaved.txt").write_text("an edit not saved yet\n", encoding="utf-8")
    return slot


async def backed_up_and_restored(
    client: Client, target: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Give the project some history, back it up, list the backups and restore into ``target``."""
    await project_with_history(client)
    backup = await ok(client, "create_backup", reason=LONG_REASON)
    listed = (await ok(client, "list_backups"))["backups"]
    restored = await ok(
        client, "restore_backup", backup_id=backup["backup_id"], target=str(target), reason=LONG_REASON
    )
    return backup, listed, restored


async def picture(root: Path) -> dict[str, Any]:
    """What a person sees of a project: workspaces, versions with tags, runs, records."""
    async with Client(server_for(root), mode="legacy") as client:
        workspaces = (await ok(client, "list_workspaces"))["workspaces"]
        versions = (await ok(client, "manage_versions", workspace="base", action="list"))["versions"][
            "versions"
        ]
        runs = (await ok(client, "list_runs", limit=200))["runs"]
        history = (await ok(client, "list_history", workspace="base", limit=200))["records"]
    return {
        "workspaces": sorted((w["name"], (w["latest_version"] or {}).get("version")) for w in workspaces),
        "versions": [(v["version"], sorted(v.get("tags") or [])) for v in versions],
        "runs": sorted((r["stage_run_id"], r["status"]) for r in runs),
        "records": sorted((r["record_id"], r["ml_outcome"], tuple(r["tags"])) for r in history),
    }


def fsck_problems(repo: Path) -> str:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "fsck", "--full", "--no-dangling"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def integrity(database: Path) -> str:
    conn = sqlite3.connect(database)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


async def test_restore_into_an_empty_folder_shows_the_same_workspaces_versions_tags_runs_and_records(
    project_root: Path, tmp_path: Path
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        target = tmp_path / "restored"
        backup, listed, restored = await backed_up_and_restored(client, target)

    assert [item["backup_id"] for item in listed] == [backup["backup_id"]]
    assert backup["counts"] == {
        "workspaces": 1,
        "versions": 2,
        "tags": 2,
        "pipeline_runs": 1,
        "stage_runs": 2,
        "records": 3,
    }
    assert restored["counts"] == backup["counts"]
    assert restored["integrity_check"] == "ok" and restored["version_store_check"] == "ok"
    assert integrity(target / ".goldfish" / "goldfish.db") == "ok"
    assert fsck_problems(target / ".goldfish" / "dev-repo") == ""
    assert await picture(target) == await picture(project_root)
    # Slots come back as they were, unsaved edits included; run logs too.
    assert (target / "workspaces" / "w1" / "unsaved.txt").read_text(
        encoding="utf-8"
    ) == "an edit not saved yet\n"
    async with Client(server_for(target), mode="legacy") as client:
        runs = (await ok(client, "list_runs", stage="prep"))["runs"]
        logs = await ok(client, "logs", run_id=runs[0]["stage_run_id"])
    assert "prep done" in "\n".join(logs["logs"]["lines"])


async def test_backup_never_holds_the_secrets_file_or_a_runs_secrets(project_root: Path) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        await project_with_history(client)
        run_id = (await ok(client, "list_runs", stage="prep"))["runs"][0]["stage_run_id"]
        (project_root / ".goldfish" / "secrets.env").write_text(f"API_TOKEN={SECRET}\n", encoding="utf-8")
        job = project_root / ".goldfish" / "storage" / "runs" / run_id
        (job / "secrets.json").write_text(json.dumps({"API_TOKEN": SECRET}), encoding="utf-8")
        backup = await ok(client, "create_backup", reason=LONG_REASON, include_outputs=True)

    folder = Path(backup["location"])
    for path in folder.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    with tarfile.open(folder / "files.tar.gz") as archive:
        names = archive.getnames()
        contents = b"".join(
            archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        )
    assert not any("secrets" in name for name in names), names
    assert any(name.endswith("/outputs/features/features.npy") or "/outputs/" in name for name in names)
    assert SECRET.encode() not in contents


async def test_restore_in_place_while_a_run_is_active_is_refused_with_runs_active(project_root: Path) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "base")
        write_pipeline(slot, TWO_STAGES, {"prep": {"sleep": 30, "obey_stop": True}})
        backup = await ok(client, "create_backup", reason=LONG_REASON)
        run = await start_run(client)
        error = await fail(
            client, "restore_backup", "RUNS_ACTIVE", backup_id=backup["backup_id"], reason=LONG_REASON
        )
        listed = (await ok(client, "list_backups"))["backups"]
        await ok(client, "cancel", run_id=run["pipeline_run_id"], reason=LONG_REASON)
        await wait_for_pipeline(client, run["pipeline_run_id"])

    assert error["details"]["runs"] == [run["pipeline_run_id"]]
    assert len(listed) == 1  # refused before any backup of the current state was taken


async def test_restore_in_place_backs_up_the_current_state_first_and_brings_back_the_backup(
    project_root: Path,
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await project_with_history(client)
        backup = await ok(client, "create_backup", reason=LONG_REASON)
        before = await picture(project_root)
        (slot / "later.txt").write_text("work after the backup\n", encoding="utf-8")
        await ok(client, "save_version", slot="w1", message="work after the backup")
        await start_run(client, wait=True)
        later = await picture(project_root)
        restored = await ok(client, "restore_backup", backup_id=backup["backup_id"], reason=LONG_REASON)
        status = await ok(client, "status")
        back = await picture(project_root)
        slot_files = sorted(path.name for path in slot.iterdir())
        again = await ok(client, "restore_backup", backup_id=restored["safety_backup_id"], reason=LONG_REASON)

    assert later != before
    assert restored["in_place"] is True and restored["integrity_check"] == "ok"
    assert restored["version_store_check"] == "ok"
    assert back == before
    assert "later.txt" not in slot_files and "unsaved.txt" in slot_files
    assert (slot / "later.txt").exists()  # the second restore brought back the state before the first
    assert status["success"] is True
    assert again["counts"]["versions"] == backup["counts"]["versions"] + 1
    assert await picture(project_root) == later


async def test_restore_refuses_a_folder_that_is_not_empty_and_a_damaged_backup(
    project_root: Path, tmp_path: Path
) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine\n", encoding="utf-8")
    async with Client(server_for(project_root), mode="legacy") as client:
        await workspace_in_slot(client, "base")
        backup = await ok(client, "create_backup", reason=LONG_REASON)
        await fail(
            client,
            "restore_backup",
            "INVALID_PATH",
            backup_id=backup["backup_id"],
            target=str(occupied),
            reason=LONG_REASON,
        )
        bundle = Path(backup["location"]) / "versions.bundle"
        bundle.write_bytes(bundle.read_bytes()[:-10])
        damaged = await fail(
            client,
            "restore_backup",
            "BACKUP_CORRUPT",
            backup_id=backup["backup_id"],
            target=str(tmp_path / "new"),
            reason=LONG_REASON,
        )
        await fail(
            client,
            "restore_backup",
            "BACKUP_NOT_FOUND",
            backup_id="bk-20000101-000000-000000",
            reason=LONG_REASON,
        )

    assert damaged["details"]["file"] == "versions.bundle"
    assert (occupied / "keep.txt").read_text(encoding="utf-8") == "mine\n"
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


async def test_keep_deletes_the_oldest_backups_beyond_it(project_root: Path) -> None:
    configure_backup(project_root, keep=2)
    async with Client(server_for(project_root), mode="legacy") as client:
        made = [(await ok(client, "create_backup", reason=LONG_REASON))["backup_id"] for _ in range(3)]
        listed = (await ok(client, "list_backups"))["backups"]

    assert [item["backup_id"] for item in listed] == made[:0:-1]
    assert not (project_root / ".goldfish" / "backups" / made[0]).exists()


def test_every_runs_takes_a_backup_once_that_many_runs_were_started(project_root: Path) -> None:
    configure_backup(project_root, every_runs=2)
    context = ServerContext.open(project_root)
    try:
        context.workspaces.create("base", "learn something")
        context.workspaces.mount("base", "w1")
        write_pipeline(project_root / "workspaces" / "w1", TWO_STAGES, {})
        spec = {"primary_metric": "loss", "direction": "minimize"}
        counts = []
        for _ in range(2):
            request = context.run_service.build_request(
                "w1", None, None, None, None, LONG_REASON, spec, None, False, True, None
            )
            context.run_service.submit(request)
            context.backups.wait_auto()
            counts.append(context.backups.listing(50, 0)[1])
        backups, _ = context.backups.listing(50, 0)
    finally:
        context.close()

    assert counts == [0, 1]
    assert backups[0].automatic and backups[0].counts.pipeline_runs == 2
    assert "every_runs" in backups[0].reason


async def test_backup_to_a_gcs_destination_lists_and_restores(
    project_root: Path, tmp_path: Path, gcs_bucket: GcsBucket
) -> None:
    configure_backup(project_root, destination=f"gs://{gcs_bucket.name}/team/backups")
    async with Client(server_for(project_root), mode="legacy") as client:
        target = tmp_path / "from-gcs"
        backup, listed, restored = await backed_up_and_restored(client, target)

    assert backup["location"] == f"gs://{gcs_bucket.name}/team/backups/{backup['backup_id']}"
    assert [item["backup_id"] for item in listed] == [backup["backup_id"]]
    assert not (project_root / ".goldfish" / "backups").exists()
    assert restored["counts"] == backup["counts"]
    assert restored["integrity_check"] == "ok" and restored["version_store_check"] == "ok"
    assert await picture(target) == await picture(project_root)


@pytest.mark.parametrize(
    ("name", "link"),
    [("../escaped.txt", None), ("slots/w1/link", "../../../outside"), ("/abs.txt", None)],
)
def test_restore_refuses_an_archive_member_that_would_land_outside_the_project(
    project_root: Path, tmp_path: Path, name: str, link: str | None
) -> None:
    context = ServerContext.open(project_root)
    try:
        backup = context.backups.create(LONG_REASON)
        folder = Path(backup.location)
        with tarfile.open(folder / "files.tar.gz", "w:gz") as archive:
            member = tarfile.TarInfo(name)
            if link is None:
                member.size = 4
                archive.addfile(member, io.BytesIO(b"evil"))
            else:
                member.type, member.linkname = tarfile.SYMTYPE, link
                archive.addfile(member)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"]["files.tar.gz"]["sha256"] = hash_file(folder / "files.tar.gz")[0]
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with pytest.raises(BackupCorruptError):
            context.backups.restore(backup.backup_id, str(tmp_path / "target" / "inner"))
    finally:
        context.close()

    assert not (tmp_path / "target" / "escaped.txt").exists()
    assert not (tmp_path / "outside").exists()


async def test_a_project_restored_without_outputs_runs_stages_again_instead_of_reusing_missing_outputs(
    project_root: Path, tmp_path: Path
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        await project_with_history(client)
        backup = await ok(client, "create_backup", reason=LONG_REASON)
        target = tmp_path / "restored"
        await ok(
            client, "restore_backup", backup_id=backup["backup_id"], target=str(target), reason=LONG_REASON
        )
        again_here = await start_run(client, wait=True)
    shutil.rmtree(project_root)  # the disk that failed
    async with Client(server_for(target), mode="legacy") as client:
        first_prep = (await ok(client, "list_runs", stage="prep"))["runs"][-1]["stage_run_id"]
        inspected = await ok(client, "inspect_run", run_id=first_prep, include=["manifest"])
        again_there = await start_run(client, wait=True)

    assert backup["include_outputs"] is False
    assert {stage["cache_hit"] for stage in again_here["stages"]} == {True}
    assert again_there["state"] == "completed", again_there
    assert {stage["cache_hit"] for stage in again_there["stages"]} == {False}
    assert inspected["inspect"]["manifest"]["outputs_missing"] == ["features"]
    conn = sqlite3.connect(target / ".goldfish" / "goldfish.db")
    try:
        uris = [row[0] for row in conn.execute("SELECT uri FROM signal_lineage")]
    finally:
        conn.close()
    assert uris and not [uri for uri in uris if str(project_root) in uri]


async def test_a_project_restored_with_outputs_reuses_them_from_its_own_folder(
    project_root: Path, tmp_path: Path
) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        await project_with_history(client)
        backup = await ok(client, "create_backup", reason=LONG_REASON, include_outputs=True)
        target = tmp_path / "restored"
        await ok(
            client, "restore_backup", backup_id=backup["backup_id"], target=str(target), reason=LONG_REASON
        )
    shutil.rmtree(project_root)
    async with Client(server_for(target), mode="legacy") as client:
        prep = (await ok(client, "list_runs", stage="prep"))["runs"][-1]["stage_run_id"]
        manifest = (await ok(client, "inspect_run", run_id=prep, include=["manifest"]))["inspect"]["manifest"]
        again = await start_run(client, wait=True)

    assert again["state"] == "completed", again
    assert {stage["cache_hit"] for stage in again["stages"]} == {True}
    assert manifest["outputs_missing"] == []
    conn = sqlite3.connect(target / ".goldfish" / "goldfish.db")
    try:
        uris = [row[0] for row in conn.execute("SELECT uri FROM signal_lineage WHERE direction = 'output'")]
    finally:
        conn.close()
    assert uris and all(Path(unquote(urlsplit(uri).path)).exists() for uri in uris), uris


def test_every_minutes_is_due_with_no_backup_yet_and_not_again_until_work_changes(project_root: Path) -> None:
    configure_backup(project_root, every_minutes=60)
    context = ServerContext.open(project_root)
    try:
        context.workspaces.create("base", "learn something")
        first = context.backups.auto()
        again = context.backups.auto()
        listed, total = context.backups.listing(50, 0)
    finally:
        context.close()

    assert first is not None and first.automatic and "every_minutes" in first.reason
    assert again is None  # an hour has not passed, and nothing changed anyway
    assert total == 1 and listed[0].backup_id == first.backup_id


async def test_create_and_restore_report_mcp_progress_as_they_go(project_root: Path, tmp_path: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(server_for(project_root), mode="legacy") as client:
        made = await client.call_tool("create_backup", {"reason": LONG_REASON}, progress_callback=progress)
        created = list(seen)
        seen.clear()
        assert made.structured_content is not None
        backup_id = made.structured_content["backup_id"]
        arguments = {"backup_id": backup_id, "target": str(tmp_path / "r"), "reason": LONG_REASON}
        await client.call_tool("restore_backup", arguments, progress_callback=progress)

    assert [step for step, _, _ in created] == [0, 1, 2, 3, 4, 5] and created[-1][1] == 5
    assert created[-1][2] == f"backup {backup_id} done"
    assert seen[-1] == (5, 5, f"restored {backup_id}")
