"""sync_commit: save one changed file of a 2,000-file slot, beside plain ``git add -A && git commit``.

The goldfish side times ``context.versions.save(slot, message)``: stage the slot into its
private index, list the changes, check them, write the tree, commit, tag ``<ws>-vN`` and insert
the version row. The git side times ``git add -A`` then ``git commit -q -m x`` (two direct
``git`` calls, no shell) in a plain repository holding the same files. Each round changes the
same file on both sides with new content, and the two sides alternate within a round.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import Figure, git, median, ratio, temp_dir, time_ms, write_tree

NAME = "sync_commit"
FOLDERS = 10
FILES_PER_FOLDER = 200
FULL_ROUNDS = 10
SLOT = "w1"
CHANGED = Path("pkg005") / "mod0100.py"

if TYPE_CHECKING:
    from goldfish.context import ServerContext


def _plain_repo(root: Path) -> Path:
    """A plain git repository with the bench files, committed once."""
    root.mkdir()
    git(root, "init", "-q")
    write_tree(root, FOLDERS, FILES_PER_FOLDER)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def _git_commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")


def _save(context: ServerContext) -> None:
    """Save the slot; a save that records nothing would time the wrong thing, so it is an error."""
    info = context.versions.save(SLOT, "one file changed")
    if not info.created or info.files_changed != 1:
        raise RuntimeError(f"expected a new version with 1 changed file, got {info!r}")


def _change(root: Path, round_no: int) -> None:
    """Rewrite the one changed file with content unique to this round."""
    (root / CHANGED).write_text(f"# changed in round {round_no}\nvalue = {round_no}\n", encoding="utf-8")


def run(quick: bool) -> Iterator[Figure]:
    """Time a goldfish save against a plain git commit of the same one-file change."""
    from goldfish.context import ServerContext
    from goldfish.project import initialize_project

    rounds = 2 if quick else FULL_ROUNDS
    with temp_dir(NAME) as workdir:
        initialize_project(str(workdir / "project"), "synccommit")
        context = ServerContext.open(workdir / "project")
        try:
            context.startup()
            context.workspaces.create("big", "a 2,000-file slot")
            slot = Path(context.workspaces.mount("big", SLOT).slot_path)
            write_tree(slot, FOLDERS, FILES_PER_FOLDER)
            context.versions.save(SLOT, "initial files")
            plain = _plain_repo(workdir / "plain")
            goldfish_ms, git_ms = [], []
            for round_no in range(rounds):
                _change(slot, round_no)
                goldfish_ms.append(time_ms(lambda: _save(context)))
                _change(plain, round_no)
                git_ms.append(time_ms(lambda: _git_commit(plain)))
        finally:
            context.close()
    yield Figure(NAME, "goldfish_save_ms", median(goldfish_ms), "ms", rounds)
    yield Figure(NAME, "git_add_commit_ms", median(git_ms), "ms", rounds)
    yield Figure(NAME, "ratio_vs_git", ratio(median(goldfish_ms), median(git_ms)), "ratio", rounds)
