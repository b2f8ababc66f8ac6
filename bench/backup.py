"""``create_backup`` of a big project while a run writes metrics, then a restore into an empty folder.

The project: one workspace whose version holds 2,000 files (plus a few later versions), 5,000
pipeline runs (10,000 stage runs) with records, finalizations and metric points, and a small
stdout log for every stage run. While the backup is taken, a separate process keeps ingesting
metric points the way a run's driver does and times every write; the figure is its longest.
Goal (quality.md): consistent snapshot (integrity_check ok, git fsck clean, same counts) in
< 10 s; no writer blocked for more than 200 ms. ``--quick`` uses 500 stage runs and 200 files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Figure
from bench.run_history import History, add_runs, stage_run_id

NAME = "backup"
LOG_TEXT = "".join(f"step {n} loss={1 / (n + 1):.5f}\n" for n in range(40))
WRITER = """
import json, sys, time
from pathlib import Path
from goldfish.context import ServerContext

root, stop, out, run_id = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
context = ServerContext.open(root)
waits, step = [], 0
ready = stop.with_name("ready")
while not stop.exists():
    points = [("live_loss", step + i, 1.0 / (step + i + 1), time.time()) for i in range(50)]
    began = time.perf_counter()
    context.metrics.ingest(run_id, points, 50 * 40)
    waits.append((time.perf_counter() - began) * 1000)
    step += 50
    ready.touch()
    time.sleep(0.005)
context.close()
out.write_text(json.dumps(waits))
"""


def build(root: Path, files: int, pipeline_runs: int) -> None:
    """The project at ``root``: a ``files``-file workspace, ``pipeline_runs`` runs with logs."""
    from goldfish.context import ServerContext
    from goldfish.project import initialize_project
    from goldfish.storage.paths import RunPaths

    initialize_project(str(root), "backupbench")
    context = ServerContext.open(root)
    try:
        context.workspaces.create("big", "a workspace with many files")
        slot = Path(context.workspaces.mount("big", "w1").slot_path)
        for index in range(files):
            folder = slot / f"pkg{index // 100:02d}"
            folder.mkdir(exist_ok=True)
            (folder / f"module{index}.py").write_text(f"VALUE = {index}\n", encoding="utf-8")
        for version in range(5):
            (slot / "train.py").write_text(f"EPOCHS = {version}\n", encoding="utf-8")
            context.versions.save("w1", f"version {version + 1}")
        add_runs(context, ["big"], 5, History(pipeline_runs, 50, 400), 0, pipeline_runs)
        for index in range(pipeline_runs):
            for stage in ("prepare", "train"):
                path = context.storage.local_path(RunPaths(stage_run_id(index, stage)).stdout)
                assert path is not None
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(LOG_TEXT, encoding="utf-8")
    finally:
        context.close()


def _fsck_clean(repo: Path) -> bool:
    done = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full"], capture_output=True, check=False)
    return done.returncode == 0


def measure(root: Path, scratch: Path) -> dict[str, float | bool | int]:
    """Back up while the writer writes, then restore; the facts and timings."""
    from goldfish.context import ServerContext

    stop, out = scratch / "stop", scratch / "waits.json"
    live = stage_run_id(0, "train")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(stop), str(out), live])
    context = ServerContext.open(root)
    try:
        deadline = time.monotonic() + 60
        while not (scratch / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer is writing before the backup starts
        began = time.perf_counter()
        backup = context.backups.create("benchmark backup while a run writes metrics")
        backup_s = time.perf_counter() - began
        time.sleep(0.2)
        stop.touch()
        if writer.wait(timeout=60) != 0:
            raise RuntimeError("the metrics writer failed (its traceback is above)")
        target = scratch / "restored"
        began = time.perf_counter()
        restored = context.backups.restore(backup.backup_id, str(target))
        restore_s = time.perf_counter() - began
    finally:
        context.close()
    waits = json.loads(out.read_text())
    consistent = (
        restored.integrity_check == "ok"
        and restored.version_store_check == "ok"
        and restored.counts == backup.counts
        and _fsck_clean(target / ".goldfish" / "dev-repo")
    )
    return {
        "backup_s": backup_s,
        "restore_s": restore_s,
        "total_s": backup_s + restore_s,
        "consistent": consistent,
        "writer_max_ms": max(waits),
        "writer_writes": len(waits),
        "size_bytes": backup.size_bytes,
        "stage_runs": backup.counts.stage_runs,
    }


UNITS = {"backup_s": "s", "restore_s": "s", "total_s": "s", "consistent": "bool", "writer_max_ms": "ms"}


def run(quick: bool) -> Iterator[Figure]:
    """Figures: backup_s, restore_s, total_s, consistent, writer_max_ms, writer_writes, size_bytes."""
    files, pipeline_runs = (200, 250) if quick else (2_000, 5_000)
    with tempfile.TemporaryDirectory(prefix="gf-bench-backup-") as tmp:
        scratch = Path(tmp)
        root = scratch / "project"
        began = time.perf_counter()
        build(root, files, pipeline_runs)
        yield Figure(NAME, "build_s", time.perf_counter() - began, "s", 1)
        facts = measure(root, scratch)
        for metric, value in facts.items():
            unit = UNITS.get(metric, "bytes" if metric == "size_bytes" else "count")
            n = int(facts["writer_writes"]) if metric == "writer_max_ms" else 1
            yield Figure(NAME, metric, value, unit, n)
