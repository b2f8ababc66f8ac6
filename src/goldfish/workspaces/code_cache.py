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
                self._repo.export(commit, staging, self._root / f"{commit}.{os.getpid()}.index")
                (staging / READY_MARKER).touch()
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
        return folder

    def materialize(self, commit: str, target: Path) -> None:
        """Make ``target`` hold the version's files: hardlinks into the cache (copies across devices)."""
        link_tree(self.path(commit), target, ignore=shutil.ignore_patterns(READY_MARKER))
