"""Slot → version: the one sync path behind save_version, hibernate, rollback and run().

Order is fixed for crash safety: commit, then tag ``<workspace>-vN``, then the database row.
A tag without a row (crash in between) is repaired by :meth:`SlotSync.reconcile`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from goldfish.db.database import Database
from goldfish.db.records import RecordRepository
from goldfish.db.workspaces import VersionRow, WorkspaceRepository, WorkspaceRow
from goldfish.errors import (
    GoldfishError,
    InternalError,
    InvalidPathError,
    SlotTooLargeError,
    UnsafeSymlinkError,
)
from goldfish.ids import new_record_id
from goldfish.timeutil import now_iso
from goldfish.workspaces.dev_repo import Change, DevRepo

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
MAX_LISTED = 100

log = logging.getLogger("goldfish.workspaces")


@dataclass(frozen=True)
class SyncResult:
    """What a sync did."""

    version: VersionRow | None
    created: bool
    changes: list[Change]


def version_tag(workspace: str, number: int) -> str:
    """The dev-repo tag of a version."""
    return f"{workspace}-v{number}"


class SlotSync:
    """Stages a slot, checks what changed, and records it as the next version.

    Callers must hold the workspace lock.
    """

    def __init__(
        self,
        db: Database,
        repo: DevRepo,
        workspaces: WorkspaceRepository,
        records: RecordRepository,
        max_file_bytes: int,
    ):
        self._db = db
        self._repo = repo
        self._workspaces = workspaces
        self._records = records
        self._max_file_bytes = max_file_bytes
        # Workspaces whose save failed half-way here; repaired at their next lookup.
        self.suspect: set[str] = set()

    def pending_changes(self, slot: Path, index: Path, workspace: str) -> list[Change]:
        """Stage the slot and return what differs from the workspace head."""
        self._repo.stage_slot(slot, index)
        return self._repo.staged_changes(index, self._repo.branch_ref(workspace))

    def save(self, ws: WorkspaceRow, slot: Path, index: Path, message: str, source: str) -> SyncResult:
        """Sync ``slot`` into a new version of ``ws`` if anything changed."""
        head = self.repair(ws)
        changes = self.pending_changes(slot, index, ws.name)
        if not changes:
            return SyncResult(version=self._workspaces.latest_version(ws.id), created=False, changes=[])
        self._check(slot, changes)
        with self._repaired_on_failure(ws):
            commit = self._repo.commit(ws.name, self._repo.write_tree(index), head, message)
            return SyncResult(self.record(ws, commit, message, source, len(changes)), True, changes)

    def record(
        self, ws: WorkspaceRow, commit: str, message: str, source: str, files_changed: int
    ) -> VersionRow:
        """Tag ``commit`` as the next version of ``ws`` and insert its row."""
        with self._repaired_on_failure(ws):
            try:
                number = self._tag_and_insert(ws, commit, message, source, files_changed)
            except InternalError:
                # The number's tag exists without a row: an earlier save died between the two.
                if not self.reconcile(ws):
                    raise
                number = self._tag_and_insert(ws, commit, message, source, files_changed)
        row = self._workspaces.version(ws.id, number)
        if row is None:  # pragma: no cover - inserted just above
            raise InternalError("A saved version could not be read back.")
        return row

    def _tag_and_insert(self, ws: WorkspaceRow, commit: str, message: str, source: str, files: int) -> int:
        tagged: str | None = None
        try:
            with self._db.transaction() as conn:
                number = self._workspaces.next_version_num(conn, ws.id)
                tagged = version_tag(ws.name, number)
                self._repo.tag(tagged, commit)
                self._workspaces.insert_version(conn, ws.id, number, commit, message, source, files)
                self._insert_record(conn, ws, number, message)
        except BaseException:
            if tagged is not None:
                self._drop_tag(tagged, commit)
            raise
        return number

    def _drop_tag(self, tag: str, commit: str) -> None:
        """Take back the tag of a version whose row could not be written (the disk refused it).

        When the store cannot be written either, the tag stays and :meth:`repair` gives it its
        row at the next call instead.
        """
        try:
            self._repo.drop_tag(tag, commit)
        except GoldfishError as exc:
            log.warning("could not take back tag %s yet: %s", tag, exc.message)

    def _insert_record(self, conn: sqlite3.Connection, ws: WorkspaceRow, number: int, message: str) -> None:
        """The experiment record of a saved version (its reason is the version's message)."""
        self._records.insert(
            conn,
            {
                "id": new_record_id(),
                "workspace_id": ws.id,
                "workspace": ws.name,
                "record_type": "version",
                "version_num": number,
                "reason": message,
                "created_at": now_iso(),
            },
        )

    # -- keeping the version store and the database in step -----------------------------------
    def repair(self, ws: WorkspaceRow) -> str:
        """Make the store and the database agree on ``ws``'s versions; return the workspace head.

        A save cut short (a crash, a full or read-only disk) can leave a version tag without its
        row, or the workspace moved past its last version with no tag at all. Tags get their
        rows (:meth:`reconcile`); a head beyond the last version goes back to it, so the slot's
        files show as unsaved again instead of silently matching a version nobody can see.
        """
        head = self._repo.branch_head(ws.name)
        expected = self._last_commit(ws)
        if head != expected:
            self.reconcile(ws)
            expected = self._last_commit(ws)
            if head != expected:
                self._repo.move_branch(ws.name, expected, head)
        self.suspect.discard(ws.name)
        return expected

    def repair_if_suspect(self, ws: WorkspaceRow) -> None:
        """:meth:`repair` ``ws`` if a save of it failed half-way in this process (best effort)."""
        if ws.name in self.suspect:
            try:
                self.repair(ws)
            except GoldfishError as exc:  # the disk may still be full or read-only: the next call retries
                log.warning("workspace %s could not be repaired yet: %s", ws.name, exc.message)

    def _last_commit(self, ws: WorkspaceRow) -> str:
        latest = self._workspaces.latest_version(ws.id)
        return latest.commit_sha if latest is not None else ws.base_commit

    @contextmanager
    def _repaired_on_failure(self, ws: WorkspaceRow) -> Iterator[None]:
        """On a failure after the store changed, repair at once, else at the next call."""
        try:
            yield
        except BaseException:
            self.suspect.add(ws.name)
            self.repair_if_suspect(ws)
            raise

    def reconcile(self, ws: WorkspaceRow) -> int:
        """Insert rows for version tags of ``ws`` that have none (left by a crash); return how many."""
        return self._insert_missing(ws, self._repo.tags_with_prefix(f"{ws.name}-v"))

    def reconcile_all(self) -> int:
        """:meth:`reconcile` for every live workspace, reading the tags once."""
        tags = self._repo.tags_with_prefix("")
        repaired = 0
        for name in self._workspaces.names():
            ws = self._workspaces.get(name)
            if ws is not None:
                repaired += self._insert_missing(ws, tags)
        return repaired

    def _insert_missing(self, ws: WorkspaceRow, tags: dict[str, str]) -> int:
        known = set(self._workspaces.version_numbers_between(ws.id, 1, 10**9))
        missing = []
        prefix = f"{ws.name}-v"
        for name, sha in tags.items():
            suffix = name[len(prefix) :] if name.startswith(prefix) else ""
            if suffix.isdigit() and int(suffix) not in known:
                missing.append((int(suffix), sha))
        if missing:
            with self._db.transaction() as conn:
                # Re-read under the write lock: a save in another process may have tagged its
                # version just before we looked and committed the row while we waited.
                known = set(self._workspaces.version_numbers_between(ws.id, 1, 10**9))
                missing = [(number, sha) for number, sha in missing if number not in known]
                for number, sha in sorted(missing):
                    message = "Recovered after an interrupted save"
                    self._workspaces.insert_version(conn, ws.id, number, sha, message, "reconcile", 0)
                    self._insert_record(conn, ws, number, message)
        return len(missing)

    def _check(self, slot: Path, changes: list[Change]) -> None:
        """Refuse links out of the slot, nested repositories and oversized files."""
        root = slot.resolve()
        for change in changes:
            if change.status == "D":
                continue
            if change.new_mode == SYMLINK_MODE:
                _check_link(root, slot / change.path, change.path)
            elif change.new_mode == GITLINK_MODE:
                raise InvalidPathError(
                    f"'{change.path}' is a separate repository inside the slot; nothing was saved.",
                    details={"path": change.path},
                    remedy="Copy the files you need into the slot without its .git folder.",
                )
            else:
                self._check_size(slot / change.path, change.path)

    def _check_size(self, path: Path, rel: str) -> None:
        size = path.stat().st_size
        if size > self._max_file_bytes:
            raise SlotTooLargeError(
                f"'{rel}' is {size} bytes, over the {self._max_file_bytes}-byte limit; nothing was saved.",
                details={"path": rel, "size": size, "limit": self._max_file_bytes},
            )


def _check_link(root: Path, path: Path, rel: str) -> None:
    """Refuse a symlink whose target resolves outside ``root``."""
    link = os.readlink(path)
    target = (path.parent / link).resolve()
    if target != root and root not in target.parents:
        raise UnsafeSymlinkError(
            f"'{rel}' is a link to {link!r}, outside the slot; nothing was saved.",
            details={"path": rel, "target": link},
        )
