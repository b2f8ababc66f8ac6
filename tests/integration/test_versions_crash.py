"""Crash consistency of versions: tags without rows, concurrent saves, two processes at once.

A save commits, then tags ``<workspace>-vN``, then inserts the row. A crash between the tag and
the row leaves a tag without a row; the next save and startup reconciliation must repair it
without ever giving two versions the same number. Real git, real SQLite, real processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from goldfish.context import ServerContext
from goldfish.memory.state_md import StateWriter
from goldfish.workspaces.sync import version_tag

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_atomic(path: Path, text: str) -> None:
    """Replace a file in one step, so a concurrent `git add` never sees it half written."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def mounted_workspace(context: ServerContext, name: str = "baseline", slot: str = "w1") -> Path:
    context.workspaces.create(name, "survive crashes")
    context.workspaces.mount(name, slot)
    return context.core.slot_path(slot)


def version_rows(context: ServerContext, workspace: str) -> list[tuple[int, str, str]]:
    """(number, short commit, source) of every version, pruned ones included, oldest first."""
    page = context.versions.manage(
        workspace,
        "list",
        version=None,
        tag=None,
        from_version=None,
        to_version=None,
        include_pruned=True,
        limit=200,
        offset=0,
    )
    return sorted((int(v.version[1:]), v.commit, v.source) for v in page.versions)


def crash_between_tag_and_row(context: ServerContext, workspace: str, slot: str, number: int) -> str:
    """Do what a save does up to the tag, then 'die': commit and tag vN, insert no row."""
    repo = context.repo
    index = context.paths.slot_index(slot)
    repo.stage_slot(context.core.slot_path(slot), index)
    head = repo.branch_head(workspace)
    commit = repo.commit(workspace, repo.write_tree(index), head, "a save that never finished")
    repo.tag(version_tag(workspace, number), commit)
    return commit


def tag_numbers(context: ServerContext, workspace: str) -> list[int]:
    prefix = f"{workspace}-v"
    return sorted(int(name[len(prefix) :]) for name in context.repo.tags_with_prefix(prefix))


# -- a tag without a row ---------------------------------------------------------------------


def test_save_when_version_tag_exists_without_row_recovers_it_and_numbers_after_it(
    context: ServerContext,
) -> None:
    slot = mounted_workspace(context)
    (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
    assert context.versions.save("w1", "first").version is not None
    (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")
    orphan = crash_between_tag_and_row(context, "baseline", "w1", 2)
    assert [number for number, _, _ in version_rows(context, "baseline")] == [1]

    (slot / "train.py").write_text("lr = 0.3\n", encoding="utf-8")
    saved = context.versions.save("w1", "after the crash")

    assert saved.created is True
    assert saved.version is not None
    assert saved.version.version == "v3"
    rows = version_rows(context, "baseline")
    assert [number for number, _, _ in rows] == [1, 2, 3]
    assert rows[1] == (2, orphan[:12], "reconcile")
    assert tag_numbers(context, "baseline") == [1, 2, 3]
    # The recovered version is a real one: its files can be diffed.
    diff = context.versions.diff("baseline@v2", "baseline@v1")
    assert [f.path for f in diff.files] == ["train.py"]
    assert "+lr = 0.2" in diff.patch


def test_save_when_orphan_tag_points_at_the_head_still_gives_unique_numbers(context: ServerContext) -> None:
    slot = mounted_workspace(context)
    (slot / "a.txt").write_text("1\n", encoding="utf-8")
    context.versions.save("w1", "first")
    head = context.repo.branch_head("baseline")
    context.repo.tag(version_tag("baseline", 2), head)

    (slot / "a.txt").write_text("2\n", encoding="utf-8")
    saved = context.versions.save("w1", "second")
    assert saved.version is not None
    assert saved.version.version == "v3"
    numbers = [number for number, _, _ in version_rows(context, "baseline")]
    assert numbers == [1, 2, 3]
    assert len(set(numbers)) == len(numbers)


def test_save_when_an_earlier_save_moved_the_workspace_but_never_tagged_it_creates_the_version(
    context: ServerContext,
) -> None:
    """A save cut short after its commit (crash, or a disk that refused the tag) hides nothing."""
    slot = mounted_workspace(context)
    (slot / "train.py").write_text("lr = 0.1\n", encoding="utf-8")
    context.versions.save("w1", "first")
    (slot / "train.py").write_text("lr = 0.2\n", encoding="utf-8")
    repo, index = context.repo, context.paths.slot_index("w1")
    repo.stage_slot(slot, index)
    repo.commit("baseline", repo.write_tree(index), repo.branch_head("baseline"), "a save cut short")

    saved = context.versions.save("w1", "the second learning rate")

    assert saved.created is True
    assert saved.version is not None
    assert (saved.version.version, saved.version.message) == ("v2", "the second learning rate")
    assert saved.changed_files == ["train.py"]
    assert tag_numbers(context, "baseline") == [1, 2]
    assert context.repo.branch_head("baseline").startswith(saved.version.commit)


def test_startup_when_tag_exists_without_row_inserts_the_row(project_root: Path) -> None:
    first = ServerContext.open(project_root)
    try:
        first.startup()
        slot = mounted_workspace(first)
        (slot / "model.py").write_text("layers = 2\n", encoding="utf-8")
        first.versions.save("w1", "first")
        (slot / "model.py").write_text("layers = 4\n", encoding="utf-8")
        orphan = crash_between_tag_and_row(first, "baseline", "w1", 2)
    finally:
        first.close()

    restarted = ServerContext.open(project_root)
    try:
        restarted.startup()
        rows = version_rows(restarted, "baseline")
        assert rows[-1] == (2, orphan[:12], "reconcile")
        assert [number for number, _, _ in rows] == [1, 2]
        # The slot already matches the recovered version: nothing new to save.
        again = restarted.versions.save("w1", "nothing changed")
        assert again.created is False
        assert again.version is not None
        assert again.version.version == "v2"
        (slot / "model.py").write_text("layers = 8\n", encoding="utf-8")
        after = restarted.versions.save("w1", "after restart")
        assert after.version is not None
        assert after.version.version == "v3"
        # A second startup finds nothing left to repair.
        restarted.startup()
        assert [number for number, _, _ in version_rows(restarted, "baseline")] == [1, 2, 3]
        assert "v2" in (project_root / "STATE.md").read_text(encoding="utf-8")
    finally:
        restarted.close()


def test_startup_after_workspace_deleted_and_recreated_does_not_adopt_old_versions(
    context: ServerContext, project_root: Path
) -> None:
    slot = mounted_workspace(context)
    for step in range(3):
        (slot / "step.txt").write_text(f"{step}\n", encoding="utf-8")
        context.versions.save("w1", f"step {step}")
    context.workspaces.hibernate("w1")
    context.workspaces.delete("baseline")
    context.workspaces.create("baseline", "a fresh start")

    restarted = ServerContext.open(project_root)
    try:
        restarted.startup()
        assert version_rows(restarted, "baseline") == []
        restarted.workspaces.mount("baseline", "w1")
        (slot / "new.txt").write_text("new\n", encoding="utf-8")
        saved = restarted.versions.save("w1", "first of the new one")
        assert saved.version is not None
        assert saved.version.version == "v1"
        assert saved.changed_files == ["new.txt"]
    finally:
        restarted.close()


def test_startup_while_another_process_is_mid_save_does_not_duplicate_its_row(
    context: ServerContext, project_root: Path
) -> None:
    """A save holds its transaction between tagging and inserting; startup elsewhere must not race it."""
    slot = mounted_workspace(context)
    (slot / "a.txt").write_text("1\n", encoding="utf-8")
    context.versions.save("w1", "first")
    observer = ServerContext.open(project_root)  # opened before the save's transaction starts
    tagged, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def slow_save() -> None:
        # What SlotSync does for v2, paused between the tag and the row.
        try:
            ws = context.core.workspace("baseline")
            with context.db.transaction() as conn:
                number = context.workspace_rows.next_version_num(conn, ws.id)
                commit = context.repo.branch_head("baseline")
                context.repo.tag(version_tag("baseline", number), commit)
                tagged.set()
                release.wait(10)
                context.workspace_rows.insert_version(conn, ws.id, number, commit, "slow", "save", 1)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
            tagged.set()

    def startup() -> None:
        try:
            observer.startup()
        except BaseException as exc:
            failures.append(exc)

    saver = threading.Thread(target=slow_save)
    saver.start()
    try:
        assert tagged.wait(10)
        starter = threading.Thread(target=startup)
        starter.start()
        time.sleep(0.3)  # let startup read the tags and wait for the write lock
        release.set()
        starter.join(20)
        assert not starter.is_alive()
    finally:
        release.set()
        saver.join(20)
        observer.close()
    assert failures == []
    rows = version_rows(context, "baseline")
    assert [(number, source) for number, _, source in rows] == [(1, "save"), (2, "save")]


# -- concurrency -----------------------------------------------------------------------------


def test_save_when_two_threads_save_the_same_slot_gives_distinct_version_numbers(
    context: ServerContext,
) -> None:
    slot = mounted_workspace(context)
    rounds = 6
    barrier = threading.Barrier(2)
    created: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(label: str) -> None:
        try:
            barrier.wait(10)
            for step in range(rounds):
                write_atomic(slot / f"{label}.txt", f"{label} {step}\n")
                result = context.versions.save("w1", f"{label} step {step}")
                if result.created:
                    assert result.version is not None
                    with lock:
                        created.append(result.version.version)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(label,)) for label in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(created) == len(set(created)), created
    rows = version_rows(context, "baseline")
    numbers = [number for number, _, _ in rows]
    assert numbers == list(range(1, len(numbers) + 1))
    assert sorted(f"v{n}" for n in numbers) == sorted(created)
    assert tag_numbers(context, "baseline") == numbers
    # The last version holds both threads' final files, and the slot is clean.
    assert context.versions.diff("w1", None).files == []
    head = context.repo.branch_head("baseline")
    assert context.repo.read_file(head, "left.txt") == f"left {rounds - 1}\n"
    assert context.repo.read_file(head, "right.txt") == f"right {rounds - 1}\n"


WORKER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    from goldfish.context import ServerContext

    root, slot, label, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    ready, go = Path(sys.argv[5]), Path(sys.argv[6])
    context = ServerContext.open(root)
    context.startup()
    ready.write_text("ready", encoding="utf-8")
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.002)
    path = context.core.slot_path(slot)
    made = []
    for step in range(count):
        (path / "step.txt").write_text(f"{label} {step}\\n", encoding="utf-8")
        saved = context.versions.save(slot, f"{label} step {step}")
        made.append(saved.version.version)
        context.thoughts.log(f"{label} thought {step}", label, None)
        context.state.write()
    context.startup()
    context.close()
    print(" ".join(made))
    """
)


def test_two_processes_saving_different_slots_lose_no_rows_and_keep_the_database_sound(
    context: ServerContext, project_root: Path, tmp_path: Path
) -> None:
    count = 12
    names = {"alpha": "w1", "beta": "w2"}
    for name, slot in names.items():
        mounted_workspace(context, name, slot)
    go = tmp_path / "go"
    processes: list[subprocess.Popen[str]] = []
    try:
        for name, slot in names.items():
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WORKER,
                        str(project_root),
                        slot,
                        name,
                        str(count),
                        str(tmp_path / f"ready-{name}"),
                        str(go),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=REPO_ROOT,
                )
            )
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready-{name}").exists() for name in names):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
            time.sleep(0.01)
        go.write_text("go", encoding="utf-8")
        outputs = [p.communicate(timeout=60) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.split() == [f"v{n}" for n in range(1, count + 1)]

    for name in names:
        rows = version_rows(context, name)
        assert [number for number, _, _ in rows] == list(range(1, count + 1))
        assert {source for _, _, source in rows} == {"save"}
        assert tag_numbers(context, name) == list(range(1, count + 1))
        thoughts, total = context.thoughts.list(name, 200, 0)
        assert total == count
        assert sorted(t.thought for t in thoughts) == sorted(f"{name} thought {i}" for i in range(count))
        head = context.repo.branch_head(name)
        assert context.repo.read_file(head, "step.txt") == f"{name} {count - 1}\n"

    assert context.db.integrity_ok()
    with sqlite3.connect(project_root / ".goldfish" / "goldfish.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        duplicates = raw.execute(
            "SELECT workspace_id, version_num, COUNT(*) FROM workspace_versions"
            " GROUP BY workspace_id, version_num HAVING COUNT(*) > 1"
        ).fetchall()
        assert duplicates == []
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    raw.close()
    state = (project_root / "STATE.md").read_text(encoding="utf-8")
    assert "### alpha" in state
    assert "### beta" in state


@pytest.mark.parametrize("workers", [3])
def test_threads_saving_different_slots_at_once_each_get_contiguous_versions(
    context: ServerContext, workers: int
) -> None:
    names = [f"ws{i}" for i in range(workers)]
    slots = [mounted_workspace(context, name, f"w{i + 1}") for i, name in enumerate(names)]
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def worker(name: str, slot: Path, slot_name: str) -> None:
        try:
            barrier.wait(10)
            for step in range(4):
                (slot / "step.txt").write_text(f"{step}\n", encoding="utf-8")
                result = context.versions.save(slot_name, f"{name} {step}")
                assert result.version is not None
                assert result.version.version == f"v{step + 1}"
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=worker, args=(name, slot, f"w{i + 1}"))
        for i, (name, slot) in enumerate(zip(names, slots, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    for name in names:
        assert [number for number, _, _ in version_rows(context, name)] == [1, 2, 3, 4]
    assert context.db.integrity_ok()


# -- STATE.md written by many writers at once ------------------------------------------------


def test_state_md_when_many_writers_refresh_it_at_once_none_fails_and_no_scratch_file_is_left(
    context: ServerContext, project_root: Path
) -> None:
    """Two server processes (or two tool threads of one) refresh STATE.md at the same moment."""
    other = ServerContext.open(project_root)
    writers = [context.state, other.state] * 4
    start = threading.Barrier(len(writers))
    failures: list[BaseException] = []

    def refresh(writer: StateWriter) -> None:
        start.wait()
        try:
            for _ in range(25):
                writer.write()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=refresh, args=(w,)) for w in writers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.close()

    assert failures == []
    assert "# " in (project_root / "STATE.md").read_text(encoding="utf-8")
    assert [p.name for p in project_root.iterdir() if p.name.startswith(".STATE.md")] == []
