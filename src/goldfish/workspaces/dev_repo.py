"""The hidden git dev repo (git run as plain subprocesses).

Each workspace is a branch; each saved version a tag ``<workspace>-vN``. A mounted slot is a
plain folder with no ``.git``: git sees it through ``GIT_WORK_TREE`` together with a private
index file per slot, so a sync re-hashes only the files whose stat data changed and its cost
follows the changed files, not the slot size. Git exceptions never leave this module.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from goldfish.errors import GoldfishError, InternalError, disk_fault_at, disk_fault_in

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
BASE_BRANCH = "goldfish-base"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Goldfish",
    "GIT_AUTHOR_EMAIL": "goldfish@localhost",
    "GIT_COMMITTER_NAME": "Goldfish",
    "GIT_COMMITTER_EMAIL": "goldfish@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
DEFAULT_EXCLUDES = "__pycache__/\n*.pyc\n.DS_Store\n.ipynb_checkpoints/\n"


class GitFailed(Exception):
    """A git command failed (never leaves this module: callers turn it into a GoldfishError)."""

    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


@dataclass(frozen=True)
class Change:
    """One file that differs between two trees (or a tree and a slot)."""

    status: str  # A, M, D, T (type change)
    path: str
    new_mode: str


@dataclass(frozen=True)
class TreeDiff:
    """Differences between two trees: per-file status, line counts and a unified patch."""

    files: list[dict[str, object]]
    patch: str
    truncated: bool


class DevRepo:
    """Operations on the dev repo; every method raises only :class:`GoldfishError`.

    Args:
        path: The bare repository folder.
    """

    def __init__(self, path: Path):
        self.path = path
        self._cwd = path.parent if path.parent.exists() else Path.cwd()

    def _execute(self, argv: Sequence[str], env: dict[str, str], *, strip: bool = True) -> str:
        """Run git; its stdout (one trailing newline dropped when ``strip``).

        A plain subprocess (C locale, so messages read the same everywhere): importing GitPython
        for this cost every goldfish process ~40 ms.

        Raises:
            GitFailed: git exited non-zero or could not start.
        """
        try:
            done = subprocess.run(
                list(argv),
                env={**os.environ, "LC_ALL": "C", "LANGUAGE": "C", **env},
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,  # never the caller's stdin (the MCP channel of `serve`)
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise GitFailed(str(exc)) from None
        if done.returncode != 0:
            raise GitFailed(done.stderr.decode("utf-8", errors="replace"))
        out = done.stdout.decode("utf-8", errors="surrogateescape")
        return out[:-1] if strip and out.endswith("\n") else out

    # -- plumbing ---------------------------------------------------------------------------
    def _run(
        self,
        args: Sequence[str],
        *,
        work_tree: Path | None = None,
        index: Path | None = None,
        excludes: Path | None = None,
        strip: bool = True,
    ) -> str:
        env = {**_IDENTITY, "GIT_DIR": str(self.path)}
        if index is not None:
            index.parent.mkdir(parents=True, exist_ok=True)
        if work_tree is not None:
            env["GIT_WORK_TREE"] = str(work_tree)
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        prefix = ["git", "-c", "core.quotepath=off", "-c", "core.autocrlf=false", "-c", "core.symlinks=true"]
        if excludes is not None:
            prefix += ["-c", f"core.excludesFile={excludes}"]
        try:
            return self._execute([*prefix, *args], env, strip=strip)
        except GitFailed as exc:
            stderr = exc.stderr.strip()[-2000:]
            raise self._failure(f"Version store operation failed: {' '.join(args[:2])}.", stderr) from None

    def _failure(self, message: str, stderr: str) -> GoldfishError:
        """What a failed git command means: a full or read-only disk by name, else an internal error."""
        return (
            disk_fault_in(stderr)
            or disk_fault_at(self.path, stderr)
            or InternalError(message, details={"stderr": stderr})
        )

    def initialize(self) -> str:
        """Create the repo if missing; return the base commit every workspace starts from."""
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                self._execute(
                    ["git", "init", "--quiet", "--bare", f"--initial-branch={BASE_BRANCH}", str(self.path)],
                    {},
                )
            except GitFailed as exc:
                raise InternalError(
                    f"Cannot create the version store at {self.path}: {exc.stderr.strip()}"
                ) from None
            (self.path / "info").mkdir(exist_ok=True)
            (self.path / "info" / "exclude").write_text(DEFAULT_EXCLUDES, encoding="utf-8")
        # The base commit's empty tree is an object like any other: write it, or `git fsck`
        # reports it missing. Idempotent, so projects made before this get it at their next start.
        self._stdin_run(["hash-object", "-t", "tree", "-w", "--stdin"], "")
        base = self.resolve(f"refs/heads/{BASE_BRANCH}")
        if base is None:
            base = self._run(["commit-tree", EMPTY_TREE, "-m", "Goldfish project base"])
            self._run(["update-ref", f"refs/heads/{BASE_BRANCH}", base, ""])
        return base

    def resolve(self, ref: str) -> str | None:
        """The commit a ref points at, or None."""
        try:
            out = self._execute(
                ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], {"GIT_DIR": str(self.path)}
            )
        except GitFailed:
            return None
        return out.strip() or None

    def tree_of(self, commit: str) -> str:
        """The tree id of a commit."""
        return self._run(["rev-parse", f"{commit}^{{tree}}"])

    # -- refs -------------------------------------------------------------------------------
    def create_branch(self, workspace: str, commit: str) -> None:
        """Point the workspace branch at ``commit`` (callers ensure no live workspace owns it)."""
        self._run(["update-ref", f"refs/heads/{workspace}", commit])

    @staticmethod
    def branch_ref(workspace: str) -> str:
        """The full ref name of a workspace branch (usable wherever a commit is)."""
        return f"refs/heads/{workspace}"

    def branch_head(self, workspace: str) -> str:
        """The commit at the head of the workspace branch."""
        head = self.resolve(f"refs/heads/{workspace}")
        if head is None:
            raise InternalError(f"The version store has no history for workspace '{workspace}'.")
        return head

    def tag(self, name: str, commit: str) -> None:
        """Create a lightweight tag (fails if it exists)."""
        self._run(["update-ref", f"refs/tags/{name}", commit, ""])

    def drop_tag(self, name: str, commit: str) -> None:
        """Delete a tag if it still points at ``commit``."""
        self._run(["update-ref", "-d", f"refs/tags/{name}", commit])

    def tags_with_prefix(self, prefix: str) -> dict[str, str]:
        """Tag name → commit for tags starting with ``prefix``."""
        out = self._run(["for-each-ref", "--format=%(refname:strip=2) %(objectname)", f"refs/tags/{prefix}*"])
        return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())

    def archive_workspace(self, workspace: str, archive_key: str) -> None:
        """Move a deleted workspace's branch and tags out of the way, keeping every commit reachable."""
        refs = {
            f"refs/tags/{name}": sha
            for name, sha in self.tags_with_prefix(f"{workspace}-v").items()
            if name[len(workspace) + 2 :].isdigit()
        }
        head = self.resolve(f"refs/heads/{workspace}")
        if head is not None:
            refs[f"refs/heads/{workspace}"] = head
        commands = []
        for ref, sha in refs.items():
            leaf = "head" if ref.startswith("refs/heads/") else ref.rsplit("-", 1)[-1]
            commands.append(f"create refs/goldfish-archive/{archive_key}/{leaf} {sha}")
            commands.append(f"delete {ref} {sha}")
        if commands:
            self._stdin_run(["update-ref", "--stdin"], "\n".join(commands) + "\n")

    # -- backups ----------------------------------------------------------------------------
    def refs(self) -> dict[str, str]:
        """Every ref (workspaces, version tags, archived workspaces) → the commit it names."""
        out = self._run(["for-each-ref", "--format=%(refname) %(objectname)"])
        return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())

    def bundle(self, target: Path) -> None:
        """Write every ref and the history behind it into the single file ``target``."""
        self._run(["bundle", "create", str(target), "--all"])

    def restore_bundle(self, bundle: Path) -> None:
        """Make this repo's refs exactly the bundle's (creating the repo when missing)."""
        self.initialize()
        self._run(["bundle", "verify", "--quiet", str(bundle)])
        self._run(["fetch", "--quiet", "--prune", "--no-write-fetch-head", str(bundle), "+refs/*:refs/*"])

    def fsck(self) -> list[str]:
        """Problems ``git fsck --full`` reports (empty when the store is sound)."""
        try:
            self._run(["fsck", "--full", "--no-progress", "--no-dangling"])
        except InternalError as exc:
            return [str(exc.details.get("stderr") or exc.message)]
        return []

    def _stdin_run(self, args: Sequence[str], stdin: str) -> None:
        env = {**os.environ, **_IDENTITY, "GIT_DIR": str(self.path)}
        result = subprocess.run(
            ["git", *args], input=stdin, text=True, capture_output=True, env=env, check=False
        )
        if result.returncode != 0:
            raise self._failure("Version store update failed.", result.stderr[-2000:])

    # -- slots ------------------------------------------------------------------------------
    def stage_slot(self, slot: Path, index: Path) -> None:
        """Record the slot's current files in its private index (delete semantics)."""
        ignore = slot / ".goldfishignore"
        self._run(
            ["add", "-A", "--", "."],
            work_tree=slot,
            index=index,
            excludes=ignore if ignore.is_file() else None,
        )

    def staged_changes(self, index: Path, commit: str) -> list[Change]:
        """Files whose staged content differs from ``commit``."""
        out = self._run(
            ["diff-index", "--cached", "--raw", "-z", "--no-renames", commit], index=index, strip=False
        )
        fields = out.split("\0")
        changes = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            if meta.startswith(":"):
                _old_mode, new_mode, _old, _new, status = meta[1:].split(" ")
                changes.append(Change(status=status[0], path=path, new_mode=new_mode))
        return changes

    def write_tree(self, index: Path) -> str:
        """Write the index as a tree; return its id."""
        return self._run(["write-tree"], index=index)

    def commit(self, workspace: str, tree: str, parent: str, message: str) -> str:
        """Commit ``tree`` on the workspace branch (compare-and-set on ``parent``)."""
        sha = self._run(["commit-tree", tree, "-p", parent, "-m", message])
        self._run(["update-ref", f"refs/heads/{workspace}", sha, parent])
        return sha

    def move_branch(self, workspace: str, commit: str, expected: str) -> None:
        """Point the workspace branch back at ``commit`` if it is still at ``expected``."""
        self._run(["update-ref", f"refs/heads/{workspace}", commit, expected])

    def checkout(self, slot: Path, index: Path, commit: str) -> None:
        """Write the files of ``commit`` into an empty slot and prime its index."""
        slot.mkdir(parents=True, exist_ok=True)
        self._run(["read-tree", commit], work_tree=slot, index=index)
        self._run(["checkout-index", "-a", "-f"], work_tree=slot, index=index)
        self._run(["update-index", "-q", "--refresh"], work_tree=slot, index=index)

    def export(self, commit: str, target: Path, index: Path) -> None:
        """Write the files of ``commit`` into a fresh folder (its index is thrown away after)."""
        target.mkdir(parents=True, exist_ok=True)
        try:
            self._run(["read-tree", commit], work_tree=target, index=index)
            self._run(["checkout-index", "-a", "-f"], work_tree=target, index=index)
        finally:
            index.unlink(missing_ok=True)

    def changed_paths(self, old: str, new: str) -> tuple[list[str], list[str]]:
        """Paths written (added, modified, type-changed) and deleted from ``old`` to ``new``."""
        out = self._run(["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new], strip=False)
        parts = [part for part in out.split("\0") if part]
        written: list[str] = []
        deleted: list[str] = []
        for code, path in zip(parts[0::2], parts[1::2], strict=False):
            (deleted if code.startswith("D") else written).append(path)
        return written, deleted

    def export_changes(self, commit: str, target: Path, index: Path, written: list[str]) -> None:
        """Write only ``written`` paths of ``commit`` into ``target`` (which already holds the rest).

        Existing files are replaced, never written through, so hardlinks elsewhere stay intact.
        """
        try:
            self._run(["read-tree", commit], work_tree=target, index=index)
            if written:
                self._run(["checkout-index", "-f", "--", *written], work_tree=target, index=index)
        finally:
            index.unlink(missing_ok=True)

    def object_id(self, commit: str, path: str) -> str | None:
        """The id of the file or folder ``path`` at ``commit`` (a content hash), or None when absent."""
        try:
            return self._run(["rev-parse", "--verify", "--quiet", f"{commit}:{path}"]) or None
        except GoldfishError:
            return None

    def switch(self, slot: Path, index: Path, commit: str) -> None:
        """Make a clean slot match ``commit``: changed files rewritten, removed files deleted."""
        self._run(["read-tree", "-u", "--reset", commit], work_tree=slot, index=index)

    def untracked_files(self, slot: Path, index: Path) -> list[str]:
        """Files in the slot that are not versioned (ignored ones included)."""
        ignore = slot / ".goldfishignore"
        out = self._run(
            ["ls-files", "-z", "--others", "--directory"],
            work_tree=slot,
            index=index,
            excludes=ignore if ignore.is_file() else None,
            strip=False,
        )
        return [path for path in out.split("\0") if path]

    # -- reading ----------------------------------------------------------------------------
    def diff_trees(self, old: str, new: str, max_patch_bytes: int) -> TreeDiff:
        """Per-file status and line counts plus a unified patch cut at ``max_patch_bytes``."""
        status = self._run(["diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new], strip=False)
        numstat = self._run(["diff-tree", "-r", "-z", "--no-renames", "--numstat", old, new], strip=False)
        counts = _parse_numstat(numstat)
        parts = [part for part in status.split("\0") if part]
        files: list[dict[str, object]] = []
        for code, path in zip(parts[0::2], parts[1::2], strict=False):
            added, removed = counts.get(path, (None, None))
            files.append(
                {
                    "path": path,
                    "status": _STATUS_WORDS.get(code[0], code),
                    "lines_added": added,
                    "lines_removed": removed,
                }
            )
        patch = self._run(["diff-tree", "-r", "-p", "--no-renames", "--no-color", old, new], strip=False)
        truncated = len(patch.encode()) > max_patch_bytes
        if truncated:
            patch = patch.encode()[:max_patch_bytes].decode(errors="ignore")
        return TreeDiff(files=files, patch=patch, truncated=truncated)

    def list_files(self, tree_or_commit: str) -> list[str]:
        """Every file path in a tree or commit."""
        out = self._run(["ls-tree", "-r", "-z", "--name-only", tree_or_commit], strip=False)
        return [path for path in out.split("\0") if path]

    def tree_blobs(self, commit: str) -> dict[str, str]:
        """Every file of ``commit`` with its content id (path -> blob id), in one call."""
        out = self._run(["ls-tree", "-r", "-z", "--full-tree", commit], strip=False)
        blobs: dict[str, str] = {}
        for entry in out.split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split(" ")
            if path and len(parts) == 3 and parts[1] == "blob":
                blobs[path] = parts[2]
        return blobs

    def read_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """Contents of the blobs ``blob_ids`` (missing ones left out), in one call."""
        wanted = list(dict.fromkeys(blob_ids))
        if not wanted:
            return {}
        env = {**os.environ, **_IDENTITY, "GIT_DIR": str(self.path)}
        result = subprocess.run(
            ["git", "cat-file", "--batch"],
            input="".join(f"{oid}\n" for oid in wanted).encode(),
            capture_output=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise self._failure("Version store read failed.", result.stderr.decode(errors="replace")[-2000:])
        return _parse_batch(result.stdout)

    def read_file(self, commit: str, path: str) -> str | None:
        """Text of a file at a commit, or None when absent."""
        try:
            return self._run(["show", f"{commit}:{path}"], strip=False)
        except GoldfishError:
            return None


_STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "type_changed"}


def _parse_numstat(out: str) -> dict[str, tuple[int | None, int | None]]:
    counts: dict[str, tuple[int | None, int | None]] = {}
    for entry in out.split("\0"):
        if entry.count("\t") >= 2:
            added, removed, path = entry.split("\t", 2)
            counts[path] = (
                int(added) if added.isdigit() else None,
                int(removed) if removed.isdigit() else None,
            )
    return counts


def _parse_batch(out: bytes) -> dict[str, bytes]:
    """``git cat-file --batch`` output as blob id -> content (``<id> missing`` lines skipped)."""
    found: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split(" ")
        pos = end + 1
        if len(header) != 3:
            continue
        size = int(header[2])
        found[header[0]] = out[pos : pos + size]
        pos += size + 1
    return found
