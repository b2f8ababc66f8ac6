"""Workspace, version, tag and mount rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from goldfish.db.database import Database
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class WorkspaceRow:
    """A live or deleted workspace."""

    id: int
    name: str
    goal: str
    created_at: str
    parent_workspace: str | None
    parent_version: int | None
    base_commit: str
    deleted_at: str | None


@dataclass(frozen=True)
class VersionRow:
    """One saved version of a workspace."""

    id: int
    workspace_id: int
    version_num: int
    commit_sha: str
    message: str
    source: str
    files_changed: int
    created_at: str
    pruned: bool
    tags: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        """The ``vN`` name."""
        return f"v{self.version_num}"


@dataclass(frozen=True)
class MountRow:
    """A slot and the workspace mounted in it."""

    slot: str
    workspace_id: int
    workspace: str
    mounted_at: str


def _workspace(row: sqlite3.Row) -> WorkspaceRow:
    return WorkspaceRow(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - sqlite3.Row


def _version(row: sqlite3.Row, tags: list[str]) -> VersionRow:
    return VersionRow(
        id=row["id"],
        workspace_id=row["workspace_id"],
        version_num=row["version_num"],
        commit_sha=row["commit_sha"],
        message=row["message"],
        source=row["source"],
        files_changed=row["files_changed"],
        created_at=row["created_at"],
        pruned=bool(row["pruned"]),
        tags=tags,
    )


class WorkspaceRepository:
    """SQL for workspaces and their versions, tags and mounts."""

    def __init__(self, db: Database):
        self._db = db

    # -- workspaces -------------------------------------------------------------------------
    def get(self, name: str) -> WorkspaceRow | None:
        """The live workspace called ``name``."""
        row = self._db.connection.execute(
            "SELECT * FROM workspaces WHERE name = ? AND deleted_at IS NULL", (name,)
        ).fetchone()
        return _workspace(row) if row else None

    def names(self) -> list[str]:
        """Names of every live workspace."""
        rows = self._db.connection.execute(
            "SELECT name FROM workspaces WHERE deleted_at IS NULL ORDER BY name"
        )
        return [row[0] for row in rows]

    def insert(
        self,
        conn: sqlite3.Connection,
        name: str,
        goal: str,
        base_commit: str,
        parent_workspace: str | None,
        parent_version: int | None,
    ) -> int:
        """Insert a workspace inside the caller's transaction; return its id."""
        cursor = conn.execute(
            "INSERT INTO workspaces (name, goal, created_at, parent_workspace, parent_version, base_commit)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, goal, now_iso(), parent_workspace, parent_version, base_commit),
        )
        return int(cursor.lastrowid or 0)

    def mark_deleted(self, conn: sqlite3.Connection, workspace_id: int) -> None:
        """Soft-delete: the rows stay for provenance, the name becomes free."""
        conn.execute("UPDATE workspaces SET deleted_at = ? WHERE id = ?", (now_iso(), workspace_id))

    def count(self) -> int:
        """Number of live workspaces."""
        return int(
            self._db.connection.execute(
                "SELECT COUNT(*) FROM workspaces WHERE deleted_at IS NULL"
            ).fetchone()[0]
        )

    def page(self, limit: int, offset: int) -> list[WorkspaceRow]:
        """Live workspaces by name."""
        rows = self._db.connection.execute(
            "SELECT * FROM workspaces WHERE deleted_at IS NULL ORDER BY name LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_workspace(row) for row in rows]

    def recently_active(self, limit: int) -> list[WorkspaceRow]:
        """Live workspaces, the one with the newest version (or creation) first."""
        rows = self._db.connection.execute(
            "SELECT w.* FROM workspaces w LEFT JOIN workspace_versions v ON v.workspace_id = w.id"
            " WHERE w.deleted_at IS NULL GROUP BY w.id"
            " ORDER BY COALESCE(MAX(v.created_at), w.created_at) DESC LIMIT ?",
            (limit,),
        )
        return [_workspace(row) for row in rows]

    # -- versions ---------------------------------------------------------------------------
    def next_version_num(self, conn: sqlite3.Connection, workspace_id: int) -> int:
        """The next number; pruned versions keep theirs, so numbering never goes back."""
        row = conn.execute(
            "SELECT COALESCE(MAX(version_num), 0) FROM workspace_versions WHERE workspace_id = ?",
            (workspace_id,),
        ).fetchone()
        return int(row[0]) + 1

    def insert_version(
        self,
        conn: sqlite3.Connection,
        workspace_id: int,
        version_num: int,
        commit_sha: str,
        message: str,
        source: str,
        files_changed: int,
    ) -> None:
        """Insert a version row inside the caller's transaction."""
        conn.execute(
            "INSERT INTO workspace_versions"
            " (workspace_id, version_num, commit_sha, message, source, files_changed, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (workspace_id, version_num, commit_sha, message, source, files_changed, now_iso()),
        )

    def _tags_for(self, version_ids: list[int]) -> dict[int, list[str]]:
        if not version_ids:
            return {}
        marks = ",".join("?" * len(version_ids))
        rows = self._db.connection.execute(
            f"SELECT version_id, tag FROM version_tags WHERE version_id IN ({marks}) ORDER BY tag",  # noqa: S608
            version_ids,
        )
        tags: dict[int, list[str]] = {}
        for row in rows:
            tags.setdefault(row[0], []).append(row[1])
        return tags

    def _with_tags(self, rows: list[sqlite3.Row]) -> list[VersionRow]:
        tags = self._tags_for([row["id"] for row in rows])
        return [_version(row, tags.get(row["id"], [])) for row in rows]

    def version(self, workspace_id: int, version_num: int) -> VersionRow | None:
        """One version, pruned or not."""
        row = self._db.connection.execute(
            "SELECT * FROM workspace_versions WHERE workspace_id = ? AND version_num = ?",
            (workspace_id, version_num),
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def latest_version(self, workspace_id: int) -> VersionRow | None:
        """The newest version, pruned or not (the branch head)."""
        row = self._db.connection.execute(
            "SELECT * FROM workspace_versions WHERE workspace_id = ? ORDER BY version_num DESC LIMIT 1",
            (workspace_id,),
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def versions(
        self, workspace_id: int, *, include_pruned: bool, limit: int, offset: int
    ) -> tuple[list[VersionRow], int]:
        """Versions newest first, with the total that matches."""
        where = "workspace_id = ?" + ("" if include_pruned else " AND pruned = 0")
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM workspace_versions WHERE {where}", (workspace_id,))  # noqa: S608
        rows = conn.execute(
            f"SELECT * FROM workspace_versions WHERE {where} ORDER BY version_num DESC LIMIT ? OFFSET ?",  # noqa: S608
            (workspace_id, limit, offset),
        ).fetchall()
        return self._with_tags(rows), int(total.fetchone()[0])

    def version_counts(self, workspace_ids: list[int]) -> dict[int, int]:
        """Number of unpruned versions per workspace id."""
        if not workspace_ids:
            return {}
        marks = ",".join("?" * len(workspace_ids))
        rows = self._db.connection.execute(
            f"SELECT workspace_id, COUNT(*) FROM workspace_versions WHERE pruned = 0"  # noqa: S608
            f" AND workspace_id IN ({marks}) GROUP BY workspace_id",
            workspace_ids,
        )
        return {row[0]: row[1] for row in rows}

    def set_pruned(
        self, conn: sqlite3.Connection, workspace_id: int, numbers: list[int], pruned: bool
    ) -> int:
        """Prune or unprune untagged versions among ``numbers``; return how many changed."""
        if not numbers:
            return 0
        marks = ",".join("?" * len(numbers))
        cursor = conn.execute(
            f"UPDATE workspace_versions SET pruned = ?, pruned_at = ? WHERE workspace_id = ?"  # noqa: S608
            f" AND version_num IN ({marks}) AND pruned != ?"
            " AND id NOT IN (SELECT version_id FROM version_tags)",
            (int(pruned), now_iso() if pruned else None, workspace_id, *numbers, int(pruned)),
        )
        return cursor.rowcount

    def version_numbers_between(self, workspace_id: int, low: int, high: int) -> list[int]:
        """Version numbers in ``low..high`` inclusive."""
        rows = self._db.connection.execute(
            "SELECT version_num FROM workspace_versions"
            " WHERE workspace_id = ? AND version_num BETWEEN ? AND ?",
            (workspace_id, low, high),
        )
        return [row[0] for row in rows]

    # -- tags -------------------------------------------------------------------------------
    def tag_owner(self, workspace_id: int, tag: str) -> int | None:
        """The version number holding ``tag``, if any."""
        row = self._db.connection.execute(
            "SELECT v.version_num FROM version_tags t JOIN workspace_versions v ON v.id = t.version_id"
            " WHERE t.workspace_id = ? AND t.tag = ?",
            (workspace_id, tag),
        ).fetchone()
        return int(row[0]) if row else None

    def add_tag(self, conn: sqlite3.Connection, workspace_id: int, version_id: int, tag: str) -> None:
        """Tag a version (and unprune it: tagged versions are always visible)."""
        conn.execute(
            "INSERT INTO version_tags (workspace_id, version_id, tag, created_at) VALUES (?, ?, ?, ?)",
            (workspace_id, version_id, tag, now_iso()),
        )
        conn.execute("UPDATE workspace_versions SET pruned = 0, pruned_at = NULL WHERE id = ?", (version_id,))

    def remove_tag(self, conn: sqlite3.Connection, workspace_id: int, tag: str) -> bool:
        """Remove a tag; True when it existed."""
        cursor = conn.execute(
            "DELETE FROM version_tags WHERE workspace_id = ? AND tag = ?", (workspace_id, tag)
        )
        return cursor.rowcount > 0

    # -- mounts -----------------------------------------------------------------------------
    def mounts(self) -> list[MountRow]:
        """Every mounted slot."""
        rows = self._db.connection.execute(
            "SELECT m.slot, m.workspace_id, w.name, m.mounted_at FROM workspace_mounts m"
            " JOIN workspaces w ON w.id = m.workspace_id ORDER BY m.slot"
        )
        return [MountRow(row[0], row[1], row[2], row[3]) for row in rows]

    def mount_of_slot(self, slot: str) -> MountRow | None:
        """The mount in ``slot``."""
        row = self._db.connection.execute(
            "SELECT m.slot, m.workspace_id, w.name, m.mounted_at FROM workspace_mounts m"
            " JOIN workspaces w ON w.id = m.workspace_id WHERE m.slot = ?",
            (slot,),
        ).fetchone()
        return MountRow(row[0], row[1], row[2], row[3]) if row else None

    def mount_of_workspace(self, workspace_id: int) -> MountRow | None:
        """The slot holding the workspace, if mounted."""
        row = self._db.connection.execute(
            "SELECT m.slot, m.workspace_id, w.name, m.mounted_at FROM workspace_mounts m"
            " JOIN workspaces w ON w.id = m.workspace_id WHERE m.workspace_id = ?",
            (workspace_id,),
        ).fetchone()
        return MountRow(row[0], row[1], row[2], row[3]) if row else None

    def insert_mount(self, conn: sqlite3.Connection, slot: str, workspace_id: int) -> None:
        """Record a mount inside the caller's transaction."""
        conn.execute(
            "INSERT INTO workspace_mounts (slot, workspace_id, mounted_at) VALUES (?, ?, ?)",
            (slot, workspace_id, now_iso()),
        )

    def delete_mount(self, conn: sqlite3.Connection, slot: str) -> None:
        """Forget the mount in ``slot``."""
        conn.execute("DELETE FROM workspace_mounts WHERE slot = ?", (slot,))
