"""Image builds: one row per docker image build, with its state and the tail of its log."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from goldfish.db.database import Database
from goldfish.ids import new_build_id
from goldfish.timeutil import now_iso, parse_iso

BuildKind = Literal["stage", "base"]
BuildState = Literal["building", "succeeded", "failed"]
LOG_TAIL_CHARS = 4000

_COLUMNS = (
    "id, kind, image, base_image, requirements_hash, workspace, stage_run_id, state, log_tail,"
    " log_lines, error, started_at, finished_at, duration_ms"
)


@dataclass(frozen=True)
class ImageBuildRow:
    """One image build."""

    id: str
    kind: str
    image: str
    base_image: str | None
    requirements_hash: str | None
    workspace: str | None
    stage_run_id: str | None
    state: str
    log_tail: str
    log_lines: int
    error: str | None
    started_at: str
    finished_at: str | None
    duration_ms: int | None


def _row(row: sqlite3.Row) -> ImageBuildRow:
    return ImageBuildRow(*(row[i] for i in range(14)))


class ImageBuildRepository:
    """SQL for the ``image_builds`` table."""

    def __init__(self, db: Database):
        self._db = db

    def start(
        self,
        kind: BuildKind,
        image: str,
        base_image: str | None,
        requirements_hash: str | None = None,
        workspace: str | None = None,
        stage_run_id: str | None = None,
    ) -> str:
        """Record a build that starts now; return its id."""
        build_id = new_build_id()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO image_builds (id, kind, image, base_image, requirements_hash, workspace,"
                " stage_run_id, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'building', ?)",
                (build_id, kind, image, base_image, requirements_hash, workspace, stage_run_id, now_iso()),
            )
        return build_id

    def progress(self, build_id: str, log_tail: str, log_lines: int) -> None:
        """Store the latest log tail of a running build."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE image_builds SET log_tail = ?, log_lines = ? WHERE id = ? AND state = 'building'",
                (log_tail[-LOG_TAIL_CHARS:], log_lines, build_id),
            )

    def finish(
        self, build_id: str, state: BuildState, log_tail: str, log_lines: int, error: str | None = None
    ) -> None:
        """Close a build with its outcome, final log tail and duration."""
        finished = now_iso()
        with self._db.transaction() as conn:
            row = conn.execute("SELECT started_at FROM image_builds WHERE id = ?", (build_id,)).fetchone()
            started = parse_iso(row[0]).timestamp() if row is not None else None
            duration = (
                int((parse_iso(finished).timestamp() - started) * 1000) if started is not None else None
            )
            conn.execute(
                "UPDATE image_builds SET state = ?, log_tail = ?, log_lines = ?, error = ?, finished_at = ?,"
                " duration_ms = ? WHERE id = ?",
                (state, log_tail[-LOG_TAIL_CHARS:], log_lines, error, finished, duration, build_id),
            )

    def get(self, build_id: str) -> ImageBuildRow | None:
        """One build by id."""
        row = self._db.connection.execute(
            f"SELECT {_COLUMNS} FROM image_builds WHERE id = ?",  # noqa: S608 - constant column list
            (build_id,),
        ).fetchone()
        return _row(row) if row is not None else None

    def page(self, workspace: str | None, limit: int, offset: int) -> tuple[list[ImageBuildRow], int]:
        """Newest builds first, of one workspace or all, with the total."""
        where, params = ("WHERE workspace = ?", [workspace]) if workspace else ("", [])
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM image_builds {where}", params).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM image_builds {where}"  # noqa: S608 - constant fragments
            " ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row(row) for row in rows], int(total)
