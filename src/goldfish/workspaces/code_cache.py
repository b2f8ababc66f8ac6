"""The files of a saved version, written out once and hardlinked into every stage that runs it.

Writing a large workspace out is the expensive part of starting a stage; a version never
changes, so one copy per version serves every stage and every later run of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from goldfish.fileops import link_tree
from goldfish.locks import file_lock
from goldfish.workspaces.dev_repo import DevRepo

READY_MARKER = ".goldfish-ready"
# Beyond this many changed files a fresh write is as cheap as patching the parent's copy.
MAX_INCREMENTAL_CHANGES = 500


class CodeCache:
    """``<root>/<commit>/`` folders holding the files of saved versions."""

    def __init__(self, repo: DevRepo, root: Path):
        self._repo = repo
        self._root = root

    def path(self, commit: str) -> Path:
        """The cached files of ``commit``, written out on first use."""
        folder = self._root / commit
        if (folder / READY_MARKER).exists():
            return folder
        with file_lock(self._root / f"{commit}.lock", f"Version files {commit[:12]}", timeout_seconds=600):
            if not (folder / READY_MARKER).exists():
                staging = self._root / f"{commit}.{os.getpid()}.partial"
                shutil.rmtree(staging, ignore_errors=True)
                self._write(commit, staging, self._root / f"{commit}.{os.getpid()}.index")
                (staging / READY_MARKER).touch()
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
        return folder

    def _write(self, commit: str, staging: Path, index: Path) -> None:
        """Write the version's files; from the previous version's cache when it is there.

        A new version usually differs from its parent in a few files: linking the parent's files
        and writing only the changed ones makes the cost follow the change, not the workspace.
        """
        parent = self._repo.resolve(f"{commit}^")
        if parent is not None and (self._root / parent / READY_MARKER).exists():
            parent_folder = self._root / parent
            written, deleted = self._repo.changed_paths(parent, commit)
            if len(written) + len(deleted) <= MAX_INCREMENTAL_CHANGES:
                link_tree(parent_folder, staging, ignore=shutil.ignore_patterns(READY_MARKER))
                for rel in deleted:
                    (staging / rel).unlink(missing_ok=True)
                self._repo.export_changes(commit, staging, index, written)
                return
            shutil.rmtree(staging, ignore_errors=True)
        self._repo.export(commit, staging, index)

    def materialize(self, commit: str, target: Path) -> None:
        """Make ``target`` hold the version's files: hardlinks into the cache (copies across devices)."""
        link_tree(self.path(commit), target, ignore=shutil.ignore_patterns(READY_MARKER))
