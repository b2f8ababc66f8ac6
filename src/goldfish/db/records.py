"""Experiment records, their finalizations (with history) and tags."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from goldfish.db.database import Database
from goldfish.timeutil import now_iso

_JSON = ("reason", "results_spec")


@dataclass(frozen=True)
class RecordRow:
    """One experiment record: a run() call or a saved version."""

    id: str
    workspace_id: int
    workspace: str
    record_type: str
    pipeline_run_id: str | None
    version_num: int
    reason: Any
    results_spec: dict[str, Any] | None
    experiment_group: str | None
    created_at: str
    finalized_at: str | None
    ml_outcome: str | None
    primary_metric: str | None
    metric_value: float | None
    direction: str | None
    run_state: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HistoryFilter:
    """What ``list_history`` narrows to."""

    workspace: str
    record_type: str | None = None
    stage: str | None = None
    tagged: bool | None = None
    metric: str | None = None
    min_value: float | None = None
    experiment_group: str | None = None
    include_pruned: bool = False
    finalized_only: bool = False


_SELECT = (
    "SELECT r.*, p.state AS run_state FROM experiment_records r"
    " LEFT JOIN pipeline_runs p ON p.id = r.pipeline_run_id"
)


# A run record whose pipeline run has ended (every state but running) and has no outcome yet.
_UNFINALIZED = "r.record_type = 'run' AND r.finalized_at IS NULL AND p.state != 'running'"


def _unfinalized_where(workspace: str | None) -> tuple[str, list[Any]]:
    if workspace is None:
        return _UNFINALIZED, []
    return f"{_UNFINALIZED} AND r.workspace = ?", [workspace]


def _record(row: sqlite3.Row, tags: list[str]) -> RecordRow:
    data = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    for key in _JSON:
        data[key] = json.loads(data[key]) if data[key] is not None else None
    return RecordRow(**data, tags=tags)


class RecordRepository:
    """SQL for records, finalizations and record tags."""

    def __init__(self, db: Database):
        self._db = db

    # -- writes -----------------------------------------------------------------------------
    def insert(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert a record inside the caller's transaction (JSON columns as Python values)."""
        values = {k: (json.dumps(v) if k in _JSON and v is not None else v) for k, v in row.items()}
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        conn.execute(f"INSERT INTO experiment_records ({columns}) VALUES ({marks})", values)  # noqa: S608

    def finalize(
        self, record_id: str, results: dict[str, Any], reason: str | None, expected_finalized_at: str | None
    ) -> bool:
        """Store a finalization; an earlier one is kept as superseded history.

        Compare-and-set on ``finalized_at``: False (nothing written) when someone finalized the
        record since the caller read it.
        """
        now = now_iso()
        with self._db.transaction() as conn:
            current = conn.execute(
                "SELECT finalized_at FROM experiment_records WHERE id = ?", (record_id,)
            ).fetchone()
            if current is None or current[0] != expected_finalized_at:
                return False
            conn.execute(
                "UPDATE finalizations SET superseded_at = ? WHERE record_id = ? AND superseded_at IS NULL",
                (now, record_id),
            )
            conn.execute(
                "INSERT INTO finalizations (record_id, results, reason, created_at) VALUES (?, ?, ?, ?)",
                (record_id, json.dumps(results), reason, now),
            )
            conn.execute(
                "UPDATE experiment_records SET finalized_at = ?, ml_outcome = ?, primary_metric = ?,"
                " metric_value = ?, direction = ? WHERE id = ?",
                (
                    now,
                    results["ml_outcome"],
                    results["primary_metric"],
                    results.get("value"),
                    results["direction"],
                    record_id,
                ),
            )
        return True

    def set_results_spec(self, record_id: str, spec: dict[str, Any]) -> None:
        """Replace the results spec of a record and of the pipeline run it covers (resume reads that one)."""
        text = json.dumps(spec)
        with self._db.transaction() as conn:
            conn.execute("UPDATE experiment_records SET results_spec = ? WHERE id = ?", (text, record_id))
            conn.execute(
                "UPDATE pipeline_runs SET results_spec = ? WHERE id ="
                " (SELECT pipeline_run_id FROM experiment_records WHERE id = ?)",
                (text, record_id),
            )

    def add_tag(self, conn: sqlite3.Connection, record_id: str, workspace: str, tag: str) -> None:
        """Tag a record inside the caller's transaction (tags are unique per workspace)."""
        conn.execute(
            "INSERT INTO record_tags (record_id, workspace, tag, created_at) VALUES (?, ?, ?, ?)",
            (record_id, workspace, tag, now_iso()),
        )

    # -- reads ------------------------------------------------------------------------------
    def _with_tags(self, rows: list[sqlite3.Row]) -> list[RecordRow]:
        ids = [row["id"] for row in rows]
        tags: dict[str, list[str]] = {}
        if ids:
            marks = ",".join("?" * len(ids))
            query = f"SELECT record_id, tag FROM record_tags WHERE record_id IN ({marks}) ORDER BY tag"  # noqa: S608
            for record_id, tag in self._db.connection.execute(query, ids):
                tags.setdefault(record_id, []).append(tag)
        return [_record(row, tags.get(row["id"], [])) for row in rows]

    def get(self, record_id: str) -> RecordRow | None:
        """One record by id."""
        row = self._db.connection.execute(f"{_SELECT} WHERE r.id = ?", (record_id,)).fetchone()
        return self._with_tags([row])[0] if row else None

    def of_pipeline_run(self, pipeline_run_id: str) -> RecordRow | None:
        """The record of a run() call."""
        row = self._db.connection.execute(
            f"{_SELECT} WHERE r.pipeline_run_id = ?", (pipeline_run_id,)
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def of_pipeline_runs(self, pipeline_run_ids: list[str]) -> dict[str, RecordRow]:
        """The records of several run() calls (one query), by pipeline run id."""
        if not pipeline_run_ids:
            return {}
        marks = ",".join("?" * len(pipeline_run_ids))
        rows = self._db.connection.execute(
            f"{_SELECT} WHERE r.pipeline_run_id IN ({marks})", pipeline_run_ids
        ).fetchall()
        return {row.pipeline_run_id: row for row in self._with_tags(rows) if row.pipeline_run_id}

    def by_tag(self, workspace: str, tag: str) -> RecordRow | None:
        """The record holding ``tag`` in ``workspace``."""
        row = self._db.connection.execute(
            f"{_SELECT} JOIN record_tags t ON t.record_id = r.id WHERE t.workspace = ? AND t.tag = ?",
            (workspace, tag),
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def tag_owner(self, workspace: str, tag: str) -> str | None:
        """Id of the record holding ``tag``."""
        row = self._db.connection.execute(
            "SELECT record_id FROM record_tags WHERE workspace = ? AND tag = ?", (workspace, tag)
        ).fetchone()
        return str(row[0]) if row else None

    def of_version(self, workspace_id: int, version_num: int) -> RecordRow | None:
        """The record of a saved version."""
        row = self._db.connection.execute(
            f"{_SELECT} WHERE r.workspace_id = ? AND r.version_num = ? AND r.record_type = 'version'"
            " ORDER BY r.created_at LIMIT 1",
            (workspace_id, version_num),
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def unfinalized(self, workspace: str | None, limit: int, offset: int = 0) -> list[RecordRow]:
        """Run records whose run has ended and that nobody finalized yet, oldest first."""
        where, params = _unfinalized_where(workspace)
        rows = self._db.connection.execute(
            f"{_SELECT} WHERE {where} ORDER BY r.created_at, r.id LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
        return self._with_tags(rows)

    def count_unfinalized(self, workspace: str | None) -> int:
        """How many run records :meth:`unfinalized` would list in all."""
        where, params = _unfinalized_where(workspace)
        row = self._db.connection.execute(
            "SELECT COUNT(*) FROM experiment_records r JOIN pipeline_runs p ON p.id = r.pipeline_run_id"  # noqa: S608
            f" WHERE {where}",
            params,
        ).fetchone()
        return int(row[0])

    def finalizations(self, record_id: str) -> list[dict[str, Any]]:
        """Every finalization of a record, oldest first (superseded ones included)."""
        rows = self._db.connection.execute(
            "SELECT results, reason, created_at, superseded_at FROM finalizations"
            " WHERE record_id = ? ORDER BY id",
            (record_id,),
        )
        return [
            {"results": json.loads(r[0]), "reason": r[1], "created_at": r[2], "superseded_at": r[3]}
            for r in rows
        ]

    def finalized(self, workspace: str, limit: int, metric: str | None = None) -> list[RecordRow]:
        """Finalized records of a workspace, newest run first (optionally only those on ``metric``).

        Ordered by when the run was made, not when it was finalized: finalizing (or re-finalizing)
        an older run later does not move it to the front of the trend.
        """
        where, params = "r.workspace = ? AND r.finalized_at IS NOT NULL", [workspace]
        if metric is not None:
            where += " AND r.primary_metric = ?"
            params.append(metric)
        rows = self._db.connection.execute(
            f"{_SELECT} WHERE {where} ORDER BY r.created_at DESC, r.id DESC LIMIT ?", [*params, limit]
        ).fetchall()
        return self._with_tags(rows)

    def best(self, workspace: str, metric: str, direction: str) -> RecordRow | None:
        """The finalized record with the best value of ``metric``."""
        order = "DESC" if direction == "maximize" else "ASC"
        row = self._db.connection.execute(
            f"{_SELECT} WHERE r.workspace = ? AND r.primary_metric = ? AND r.metric_value IS NOT NULL"
            f" ORDER BY r.metric_value {order}, r.finalized_at DESC LIMIT 1",
            (workspace, metric),
        ).fetchone()
        return self._with_tags([row])[0] if row else None

    def history(
        self, flt: HistoryFilter, sort_by: str, desc: bool, limit: int, offset: int
    ) -> tuple[list[RecordRow], int]:
        """Records of a workspace, filtered and sorted, with the total that matches."""
        clauses, params = ["r.workspace = ?"], [flt.workspace]
        optional: list[tuple[bool, str, list[Any]]] = [
            (flt.record_type is not None, "r.record_type = ?", [flt.record_type]),
            (flt.metric is not None, "r.primary_metric = ?", [flt.metric]),
            (flt.min_value is not None, "r.metric_value >= ?", [flt.min_value]),
            (flt.experiment_group is not None, "r.experiment_group = ?", [flt.experiment_group]),
            (flt.finalized_only, "r.finalized_at IS NOT NULL", []),
            (flt.tagged is True, "EXISTS (SELECT 1 FROM record_tags t WHERE t.record_id = r.id)", []),
            (flt.tagged is False, "NOT EXISTS (SELECT 1 FROM record_tags t WHERE t.record_id = r.id)", []),
            (
                flt.stage is not None,
                "EXISTS (SELECT 1 FROM stage_runs s"
                " WHERE s.pipeline_run_id = r.pipeline_run_id AND s.stage = ?)",
                [flt.stage],
            ),
            (
                not flt.include_pruned,
                "NOT EXISTS (SELECT 1 FROM workspace_versions v WHERE v.workspace_id = r.workspace_id"
                " AND v.version_num = r.version_num AND v.pruned = 1)",
                [],
            ),
        ]
        for active, clause, values in optional:
            if active:
                clauses.append(clause)
                params += values
        where = " AND ".join(clauses)
        column = "r.metric_value" if sort_by == "metric" else "r.created_at"
        nulls = "r.metric_value IS NULL, " if sort_by == "metric" else ""
        order = f"{nulls}{column} {'DESC' if desc else 'ASC'}, r.id {'DESC' if desc else 'ASC'}"
        conn = self._db.connection
        base = "FROM experiment_records r LEFT JOIN pipeline_runs p ON p.id = r.pipeline_run_id"
        total = conn.execute(f"SELECT COUNT(*) {base} WHERE {where}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT r.*, p.state AS run_state {base} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return self._with_tags(rows), int(total)
