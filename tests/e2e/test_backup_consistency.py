"""A backup taken while the project is busy restores to a consistent project.

While one stage keeps logging metrics (ingested by its driver) and a second server process keeps
saving versions of another workspace, a backup is taken; the restored project must pass
``PRAGMA integrity_check`` and ``git fsck``, hold exactly the counts its manifest names, and have
every version the database lists present in the version store.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from goldfish.context import ServerContext
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import database, wait_until

WAIT = 60.0
PIPELINE = "stages:\n  - name: steady\n"
STEADY = """\
import time
from pathlib import Path
from goldfish.io import get_config, log_metric

flag = Path(get_config()["flag"])
deadline = time.monotonic() + 60
step = 0
while not flag.exists() and time.monotonic() < deadline:
    log_metric("loss", 1.0 / (step + 1), step=step)
    step += 1
    time.sleep(0.01)
print(f"logged {step} points")
"""
# Another server process: the same services, saving a version of workspace "saver" in a loop.
SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from goldfish.context import ServerContext

    root, stop = Path(sys.argv[1]), Path(sys.argv[2])
    context = ServerContext.open(root)
    slot = root / "workspaces" / "w2"
    number = 0
    while not stop.exists() and number < 500:
        number += 1
        (slot / "counter.txt").write_text(f"{number}\\n")
        context.versions.save("w2", f"save {number}")
    context.close()
    print(number)
    """
)


def count(root: Path, sql: str) -> int:
    conn = database(root)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def start_busy_project(context: ServerContext, root: Path, stop_stage: Path) -> str:
    """Workspace "steady" (w1) running a stage that logs metrics until ``stop_stage``; "saver" in w2."""
    context.workspaces.create("steady", "log metrics for a while")
    context.workspaces.mount("steady", "w1")
    slot = root / "workspaces" / "w1"
    (slot / "modules").mkdir()
    (slot / "configs").mkdir()
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "modules" / "steady.py").write_text(STEADY, encoding="utf-8")
    (slot / "configs" / "steady.yaml").write_text(f"flag: {stop_stage}\n", encoding="utf-8")
    context.workspaces.create("saver", "save versions in a loop")
    context.workspaces.mount("saver", "w2")
    spec = {"primary_metric": "loss", "direction": "minimize"}
    request = context.run_service.build_request(
        "w1", None, None, None, None, LONG_REASON, spec, None, False, True, None
    )
    run_id = context.run_service.submit(request).pipeline_run_id
    assert run_id is not None
    return run_id


def ended(context: ServerContext, run_id: str) -> bool:
    row = context.runs.pipeline_run(run_id)
    return row is not None and row.state != "running"


def restored_facts(target: Path) -> tuple[list[tuple[str, int, str]], int, dict[str, str]]:
    """Versions (workspace, number, saved id) and metric points of the restored database; its tags."""
    conn = sqlite3.connect(target / ".goldfish" / "goldfish.db")
    try:
        versions = conn.execute(
            "SELECT w.name, v.version_num, v.commit_sha FROM workspace_versions v JOIN workspaces w "
            "ON w.id = v.workspace_id"
        ).fetchall()
        metrics = int(conn.execute("SELECT COUNT(*) FROM run_metrics").fetchone()[0])
    finally:
        conn.close()
    repo = str(target / ".goldfish" / "dev-repo")
    listing = [
        "git",
        "--git-dir",
        repo,
        "for-each-ref",
        "--format=%(refname:strip=2) %(objectname)",
        "refs/tags",
    ]
    tags = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
    return versions, metrics, dict(line.split(" ") for line in tags.splitlines() if line)


def test_backup_while_a_stage_logs_metrics_and_another_process_saves_versions_restores_consistently(
    project_root: Path, tmp_path: Path
) -> None:
    with (project_root / "goldfish.yaml").open("a", encoding="utf-8") as handle:
        handle.write("  log_sync_interval: 1\n")  # under the `defaults:` the fixture wrote last
    stop_stage, stop_saver = tmp_path / "stop-stage", tmp_path / "stop-saver"
    context = ServerContext.open(project_root)
    try:
        run_id = start_busy_project(context, project_root, stop_stage)
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(project_root), str(stop_saver)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: count(project_root, "SELECT COUNT(*) FROM run_metrics") > 0, WAIT, "metrics")
            saved = "SELECT COUNT(*) FROM workspace_versions"
            wait_until(lambda: count(project_root, saved) >= 4, WAIT, "saved versions")
            backup = context.backups.create(LONG_REASON)
            metrics_at_backup = count(project_root, "SELECT COUNT(*) FROM run_metrics")
        finally:
            stop_saver.touch()
            stop_stage.touch()
            out, err = saver.communicate(timeout=WAIT)
        assert saver.returncode == 0, err
        wait_until(lambda: ended(context, run_id), WAIT, "the run to end")
        target = tmp_path / "restored"
        restored = context.backups.restore(backup.backup_id, str(target))
    finally:
        context.close()

    assert restored.integrity_check == "ok"
    assert restored.version_store_check == "ok"
    assert restored.counts == backup.counts
    fsck = subprocess.run(
        ["git", "--git-dir", str(target / ".goldfish" / "dev-repo"), "fsck", "--full"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    versions, metrics, in_store = restored_facts(target)
    assert all(in_store.get(f"{name}-v{num}") == sha for name, num, sha in versions), (versions, in_store)
    assert 0 < metrics <= metrics_at_backup
    saved_in_backup = sum(1 for name, _, _ in versions if name == "saver")
    assert 0 < saved_in_backup < int(out)  # the other process went on saving after the snapshot
