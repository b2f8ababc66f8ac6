"""Pipeline runs, stage runs, attempts, state transitions and signal lineage: rows and reads.

The writes that move runs along (transitions, attempts, leases) are in ``db/run_moves.py``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from goldfish.db.database import Database
from goldfish.db.run_moves import RunMoves
from goldfish.states import ACTIVE, STAGE, TERMINAL, PipelineState, StageState


@dataclass(frozen=True)
class PipelineRunRow:
    """One ``run()`` call: a version of a workspace and the stages it runs."""

    id: str
    workspace_id: int
    workspace: str
    version_num: int
    pipeline: str | None
    state: str
    reason: Any
    results_spec: Any
    experiment_group: str | None
    config_override: dict[str, Any]
    inputs_override: dict[str, str]
    requested_stages: list[str] | None
    use_cache: bool
    profile: str | None
    resumed_from: str | None
    created_at: str
    finished_at: str | None
    driver_pid: int | None
    lease_owner: str | None
    lease_expires_at: float | None
    error: str | None


@dataclass(frozen=True)
class StageRunRow:
    """One stage of a pipeline run."""

    id: str
    pipeline_run_id: str
    workspace: str
    version_num: int
    stage: str
    module: str
    position: int
    state: str
    failure_kind: str | None
    error: str | None
    attempt: int
    backend: str
    profile: str | None
    backend_handle: dict[str, Any] | None
    cache_key: str | None
    cache_hit: bool
    cached_from: str | None
    exit_code: int | None
    config: dict[str, Any]
    timeout_seconds: int
    cancel_requested: bool
    run_dir: str | None
    metrics_offset: int
    heartbeat_at: float | None
    heartbeat_message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    gpus: int = 0
    gpu_ids: list[int] | None = None
    code_scope: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        """True once the run can no longer change state."""
        return StageState(self.state) in TERMINAL


@dataclass(frozen=True)
class TimelineStep:
    """One fixed-cost step of a pipeline run: when it ended (epoch seconds) and how long it took."""

    step: str
    at: float
    ms: float | None = None
    stage_run_id: str | None = None


@dataclass(frozen=True)
class LineageRow:
    """One input or output signal of a stage run."""

    stage_run_id: str
    direction: str
    signal: str
    type: str
    uri: str
    content_hash: str | None
    size_bytes: int | None
    producer_run_id: str | None
    source_name: str | None
    stats: dict[str, Any] | None = None  # an output's SVS statistics (computed in the stage's environment)


_JSON_PIPELINE = {"reason", "results_spec", "config_override", "inputs_override", "requested_stages"}


def _pipeline(row: sqlite3.Row) -> PipelineRunRow:
    data = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    for key in _JSON_PIPELINE:
        data[key] = json.loads(data[key]) if data[key] is not None else None
    data["use_cache"] = bool(data["use_cache"])
    return PipelineRunRow(**data)


def _stage(row: sqlite3.Row) -> StageRunRow:
    data = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    data["backend_handle"] = json.loads(data["backend_handle"]) if data["backend_handle"] else None
    data["config"] = json.loads(data["config"])
    data["env"] = json.loads(data["env"])
    data["secrets"] = json.loads(data["secrets"])
    data["gpu_ids"] = json.loads(data["gpu_ids"]) if data["gpu_ids"] else None
    data["cache_hit"] = bool(data["cache_hit"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    data["code_scope"] = json.loads(data["code_scope"]) if data.get("code_scope") else None
    return StageRunRow(**data)


_ACTIVE = STAGE.names(ACTIVE)
_ACTIVE_MARKS = ", ".join("?" for _ in _ACTIVE)


class RunRepository(RunMoves):
    """SQL for runs: creation, reads and lineage here, state changes inherited from :class:`RunMoves`."""

    def __init__(self, db: Database):
        super().__init__(db)

    # -- creation -------------------------------------------------------------------------
    def insert_pipeline_run(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert a pipeline run (JSON columns given as Python values)."""
        values = {
            key: (json.dumps(value) if key in _JSON_PIPELINE and value is not None else value)
            for key, value in row.items()
        }
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        conn.execute(f"INSERT INTO pipeline_runs ({columns}) VALUES ({marks})", values)  # noqa: S608

    def insert_stage_run(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Insert a stage run in ``pending`` (or already ``completed`` for a cache hit)."""
        values = dict(row)
        values["config"] = json.dumps(values.get("config", {}))
        values["env"] = json.dumps(values.get("env", {}))
        values["secrets"] = json.dumps(values.get("secrets", []))
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        conn.execute(f"INSERT INTO stage_runs ({columns}) VALUES ({marks})", values)  # noqa: S608

    # -- reads ----------------------------------------------------------------------------
    def pipeline_run(self, run_id: str) -> PipelineRunRow | None:
        """One pipeline run."""
        row = self._db.connection.execute("SELECT * FROM pipeline_runs WHERE id = ?", (run_id,)).fetchone()
        return _pipeline(row) if row else None

    def stage_run(self, run_id: str) -> StageRunRow | None:
        """One stage run."""
        row = self._db.connection.execute("SELECT * FROM stage_runs WHERE id = ?", (run_id,)).fetchone()
        return _stage(row) if row else None

    def stages_of(self, pipeline_run_id: str) -> list[StageRunRow]:
        """Stage runs of a pipeline run, in plan order."""
        rows = self._db.connection.execute(
            "SELECT * FROM stage_runs WHERE pipeline_run_id = ? ORDER BY position", (pipeline_run_id,)
        )
        return [_stage(row) for row in rows]

    def active_pipeline_runs(self) -> list[PipelineRunRow]:
        """Pipeline runs that have not finished."""
        rows = self._db.connection.execute(
            "SELECT * FROM pipeline_runs WHERE state = ?", (PipelineState.RUNNING.value,)
        )
        return [_pipeline(row) for row in rows]

    def active_stage_runs(self, limit: int = 200) -> list[StageRunRow]:
        """Stage runs that are not terminal, oldest first."""
        rows = self._db.connection.execute(
            f"SELECT * FROM stage_runs WHERE state IN ({_ACTIVE_MARKS}) ORDER BY created_at LIMIT ?",  # noqa: S608
            (*_ACTIVE, limit),
        )
        return [_stage(row) for row in rows]

    def count_active_stage_runs(self) -> int:
        """How many stage runs are not terminal."""
        row = self._db.connection.execute(
            f"SELECT COUNT(*) FROM stage_runs WHERE state IN ({_ACTIVE_MARKS})",  # noqa: S608
            _ACTIVE,
        ).fetchone()
        return int(row[0])

    def recent_stage_runs(self, limit: int, state: str | None = None) -> list[StageRunRow]:
        """Newest stage runs (optionally in one state), without counting the table."""
        if state is None:
            rows = self._db.connection.execute(
                "SELECT * FROM stage_runs ORDER BY created_at DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._db.connection.execute(
                "SELECT * FROM stage_runs WHERE state = ? ORDER BY created_at DESC LIMIT ?", (state, limit)
            )
        return [_stage(row) for row in rows]

    def latest_successful(self, workspace: str, stage: str) -> StageRunRow | None:
        """The newest completed run of ``stage`` in ``workspace``."""
        row = self._db.connection.execute(
            "SELECT * FROM stage_runs WHERE workspace = ? AND stage = ? AND state = 'completed'"
            " ORDER BY finished_at DESC LIMIT 1",
            (workspace, stage),
        ).fetchone()
        return _stage(row) if row else None

    def cached(self, workspace: str, stage: str, cache_key: str) -> StageRunRow | None:
        """A completed, executed (not itself cached) run with the same cache key."""
        row = self._db.connection.execute(
            "SELECT * FROM stage_runs"
            " WHERE workspace = ? AND stage = ? AND cache_key = ? AND state = 'completed'"
            " ORDER BY finished_at DESC LIMIT 1",
            (workspace, stage, cache_key),
        ).fetchone()
        return _stage(row) if row else None

    def list_stage_runs(
        self, filters: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[StageRunRow], int]:
        """Stage runs newest first, filtered by equal columns, with the total."""
        allowed_columns = {"workspace", "stage", "state", "pipeline_run_id"}
        where_parts = [f"{key} = ?" for key in filters if key in allowed_columns]
        params = [value for key, value in filters.items() if key in allowed_columns]
        where = ("WHERE " + " AND ".join(where_parts)) if where_parts else ""
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM stage_runs {where}", params).fetchone()[0]  # noqa: S608
        query = f"SELECT * FROM stage_runs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"  # noqa: S608
        rows = conn.execute(query, [*params, limit, offset])
        return [_stage(row) for row in rows], int(total)

    def add_timeline(
        self, pipeline_run_id: str, steps: list[TimelineStep], conn: sqlite3.Connection | None = None
    ) -> None:
        """Record fixed-cost steps of a pipeline run (inside ``conn``'s transaction when given)."""
        rows = [(pipeline_run_id, s.stage_run_id, s.step, s.at, s.ms) for s in steps]
        sql = "INSERT INTO run_timeline (pipeline_run_id, stage_run_id, step, at, ms) VALUES (?, ?, ?, ?, ?)"
        if conn is not None:
            conn.executemany(sql, rows)
            return
        with self._db.transaction() as own:
            own.executemany(sql, rows)

    def timeline(self, pipeline_run_id: str) -> list[TimelineStep]:
        """The recorded steps of a pipeline run, in the order they were written."""
        rows = self._db.connection.execute(
            "SELECT step, at, ms, stage_run_id FROM run_timeline WHERE pipeline_run_id = ? ORDER BY id",
            (pipeline_run_id,),
        )
        return [TimelineStep(row["step"], row["at"], row["ms"], row["stage_run_id"]) for row in rows]

    def transitions_of_pipeline(self, pipeline_run_id: str) -> list[dict[str, Any]]:
        """State changes of every stage of a pipeline run, oldest first."""
        rows = self._db.connection.execute(
            "SELECT t.stage_run_id, t.from_state, t.to_state, t.event, t.at FROM stage_state_transitions t"
            " JOIN stage_runs s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = ? ORDER BY t.id",
            (pipeline_run_id,),
        )
        return [dict(row) for row in rows]

    def transitions(self, stage_run_id: str) -> list[dict[str, Any]]:
        """State history of a stage run."""
        rows = self._db.connection.execute(
            "SELECT from_state, to_state, event, at, detail FROM stage_state_transitions"
            " WHERE stage_run_id = ? ORDER BY id",
            (stage_run_id,),
        )
        return [dict(row) for row in rows]

    def attempts(self, stage_run_id: str) -> list[dict[str, Any]]:
        """Attempts of a stage run."""
        rows = self._db.connection.execute(
            "SELECT attempt, backend_handle, state, failure_kind, error, exit_code, zone, started_at,"
            " finished_at FROM stage_attempts WHERE stage_run_id = ? ORDER BY attempt",
            (stage_run_id,),
        )
        return [dict(row) for row in rows]

    def list_pipeline_runs(self, workspace: str | None, limit: int) -> list[PipelineRunRow]:
        """Newest pipeline runs, optionally of one workspace."""
        if workspace:
            rows = self._db.connection.execute(
                "SELECT * FROM pipeline_runs WHERE workspace = ? ORDER BY created_at DESC LIMIT ?",
                (workspace, limit),
            )
        else:
            rows = self._db.connection.execute(
                "SELECT * FROM pipeline_runs ORDER BY created_at DESC LIMIT ?", (limit,)
            )
        return [_pipeline(row) for row in rows]

    def page_pipeline_runs(
        self, workspace: str | None, state: str | None, limit: int, offset: int
    ) -> tuple[list[PipelineRunRow], int]:
        """Pipeline runs newest first, optionally of one workspace and in one state, with the total."""
        where_parts, params = [], []
        for column, value in (("workspace", workspace), ("state", state)):
            if value is not None:
                where_parts.append(f"{column} = ?")
                params.append(value)
        where = ("WHERE " + " AND ".join(where_parts)) if where_parts else ""
        conn = self._db.connection
        total = conn.execute(f"SELECT COUNT(*) FROM pipeline_runs {where}", params).fetchone()[0]  # noqa: S608
        query = f"SELECT * FROM pipeline_runs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"  # noqa: S608
        rows = conn.execute(query, [*params, limit, offset])
        return [_pipeline(row) for row in rows], int(total)

    def stages_of_many(self, pipeline_run_ids: list[str]) -> dict[str, list[StageRunRow]]:
        """Stage runs of several pipeline runs (one query), each list in plan order."""
        found: dict[str, list[StageRunRow]] = {run_id: [] for run_id in pipeline_run_ids}
        if not pipeline_run_ids:
            return found
        marks = ",".join("?" * len(pipeline_run_ids))
        rows = self._db.connection.execute(
            f"SELECT * FROM stage_runs WHERE pipeline_run_id IN ({marks})"  # noqa: S608
            " ORDER BY pipeline_run_id, position",
            pipeline_run_ids,
        )
        for row in rows:
            found[row["pipeline_run_id"]].append(_stage(row))
        return found

    # -- lineage ----------------------------------------------------------------------------
    def add_lineage(self, rows: list[LineageRow]) -> None:
        """Record input/output signals."""
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO signal_lineage"
                " (stage_run_id, direction, signal, type, uri, content_hash, size_bytes,"
                " producer_run_id, source_name, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.stage_run_id,
                        r.direction,
                        r.signal,
                        r.type,
                        r.uri,
                        r.content_hash,
                        r.size_bytes,
                        r.producer_run_id,
                        r.source_name,
                        json.dumps(r.stats) if r.stats is not None else None,
                    )
                    for r in rows
                ],
            )

    def lineage(self, stage_run_id: str, direction: str | None = None) -> list[LineageRow]:
        """Signals of a stage run."""
        query = "SELECT * FROM signal_lineage WHERE stage_run_id = ?"
        params: list[Any] = [stage_run_id]
        if direction:
            query += " AND direction = ?"
            params.append(direction)
        rows = self._db.connection.execute(query + " ORDER BY id", params)
        return [_lineage(row) for row in rows]

    def consumers(self, producer_run_id: str) -> list[LineageRow]:
        """Input rows that read outputs of ``producer_run_id``."""
        rows = self._db.connection.execute(
            "SELECT * FROM signal_lineage WHERE producer_run_id = ? AND direction = 'input' ORDER BY id",
            (producer_run_id,),
        )
        return [_lineage(row) for row in rows]


def _lineage(row: sqlite3.Row) -> LineageRow:
    return LineageRow(
        stage_run_id=row["stage_run_id"],
        direction=row["direction"],
        signal=row["signal"],
        type=row["type"],
        uri=row["uri"],
        content_hash=row["content_hash"],
        size_bytes=row["size_bytes"],
        producer_run_id=row["producer_run_id"],
        source_name=row["source_name"],
        stats=json.loads(row["stats"]) if row["stats"] else None,
    )
