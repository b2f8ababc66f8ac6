"""Registered data sources and where they were used."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from goldfish.db.database import Database
from goldfish.timeutil import now_iso


@dataclass(frozen=True)
class SourceRow:
    """A registered dataset."""

    name: str
    uri: str
    description: str
    metadata: dict[str, Any]
    content_hash: str | None
    size_bytes: int | None
    status: str
    produced_by_run: str | None
    produced_signal: str | None
    created_at: str
    updated_at: str


def _source(row: sqlite3.Row) -> SourceRow:
    return SourceRow(
        name=row["name"],
        uri=row["uri"],
        description=row["description"],
        metadata=json.loads(row["metadata"]),
        content_hash=row["content_hash"],
        size_bytes=row["size_bytes"],
        status=row["status"],
        produced_by_run=row["produced_by_run"],
        produced_signal=row["produced_signal"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SourceRepository:
    """SQL for ``sources`` and ``source_lineage``."""

    def __init__(self, db: Database):
        self._db = db

    def get(self, name: str) -> SourceRow | None:
        """One source by name."""
        row = self._db.connection.execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        return _source(row) if row else None

    def names(self, active_only: bool = True) -> list[str]:
        """Names of (active) sources."""
        rows = self._db.connection.execute(
            "SELECT name FROM sources WHERE status = 'active' OR ? ORDER BY name", (int(not active_only),)
        )
        return [row[0] for row in rows]

    def insert(self, row: SourceRow) -> None:
        """Register a source (the name must be new)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO sources (name, uri, description, metadata, content_hash, size_bytes, status,"
                " produced_by_run, produced_signal, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.name,
                    row.uri,
                    row.description,
                    json.dumps(row.metadata),
                    row.content_hash,
                    row.size_bytes,
                    row.status,
                    row.produced_by_run,
                    row.produced_signal,
                    row.created_at,
                    row.updated_at,
                ),
            )
            if row.produced_by_run and row.produced_signal:
                conn.execute(
                    "INSERT INTO source_lineage (source_name, stage_run_id, signal, relation, at)"
                    " VALUES (?, ?, ?, 'promoted', ?)",
                    (row.name, row.produced_by_run, row.produced_signal, now_iso()),
                )

    def update(self, name: str, *, metadata: dict[str, Any] | None = None, status: str | None = None) -> None:
        """Change metadata and/or status."""
        with self._db.transaction() as conn:
            if metadata is not None:
                conn.execute(
                    "UPDATE sources SET metadata = ?, updated_at = ? WHERE name = ?",
                    (json.dumps(metadata), now_iso(), name),
                )
            if status is not None:
                conn.execute(
                    "UPDATE sources SET status = ?, updated_at = ? WHERE name = ?", (status, now_iso(), name)
                )

    def page(self, limit: int, offset: int) -> tuple[list[SourceRow], int]:
        """Sources by name, with the total."""
        conn = self._db.connection
        total = conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
        rows = conn.execute("SELECT * FROM sources ORDER BY name LIMIT ? OFFSET ?", (limit, offset))
        return [_source(row) for row in rows], int(total)

    def record_use(self, name: str, stage_run_id: str, signal: str) -> None:
        """Note that a stage run consumed the source."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO source_lineage (source_name, stage_run_id, signal, relation, at)"
                " VALUES (?, ?, ?, 'consumed', ?)",
                (name, stage_run_id, signal, now_iso()),
            )
