"""The writes that move runs along: stage transitions, attempts, pipeline ends, leases, GPU claims.

Every state change here is a compare-and-set on the state it was read in, checked first against
its table in ``states.py``; a refused move comes back as a rejected :class:`Outcome`, never an
exception, so the caller re-reads instead.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from goldfish.db.database import Database
from goldfish.states import (
    ATTEMPT,
    HOLDS_GPUS,
    PIPELINE,
    STAGE,
    AttemptState,
    Outcome,
    PipelineState,
    StageState,
)
from goldfish.timeutil import now_iso

_HOLDS_GPUS = STAGE.names(HOLDS_GPUS)
_LOST_RACE = "another process moved it first"


def _held_gpus(conn: sqlite3.Connection) -> dict[str, list[int]]:
    """Stage run id → the GPUs it holds, for every live stage run holding some."""
    marks = ", ".join("?" for _ in _HOLDS_GPUS)
    rows = conn.execute(
        f"SELECT id, gpu_ids FROM stage_runs WHERE gpu_ids IS NOT NULL AND state IN ({marks})",  # noqa: S608
        _HOLDS_GPUS,
    ).fetchall()
    return {row[0]: json.loads(row[1]) for row in rows}


def _stage_values(fields: dict[str, Any]) -> list[Any]:
    return [json.dumps(v) if key == "backend_handle" and v is not None else v for key, v in fields.items()]


class RunMoves:
    """SQL that changes runs: each state change a compare-and-set (plus a transition row for stages)."""

    def __init__(self, db: Database):
        self._db = db

    # -- stage runs -------------------------------------------------------------------------
    def transition(
        self,
        run_id: str,
        source: StageState,
        target: StageState,
        event: str,
        detail: str | None = None,
        **fields: Any,
    ) -> Outcome:
        """Move ``run_id`` from ``source`` to ``target`` if the table allows it and it is still in ``source``.

        Returns:
            Accepted when this call moved it; rejected (with the reason) when the move is not
            allowed or another process got there first: the caller re-reads instead of raising.
        """
        verdict = STAGE.check(source, target)
        if not verdict:
            return verdict
        updates = {"state": target.value, **fields}
        if target in STAGE.terminal:
            updates.setdefault("finished_at", now_iso())
        assignments = ", ".join(f"{key} = ?" for key in updates)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE stage_runs SET {assignments} WHERE id = ? AND state = ?",  # noqa: S608
                [*_stage_values(updates), run_id, source.value],
            )
            if cursor.rowcount != 1:
                return Outcome(False, f"{_LOST_RACE} (it is no longer {source})")
            conn.execute(
                "INSERT INTO stage_state_transitions (stage_run_id, from_state, to_state, event, at, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, source.value, target.value, event, now_iso(), detail),
            )
        return verdict

    def update_stage(self, run_id: str, **fields: Any) -> None:
        """Set non-state columns (handle, heartbeat, metrics offset, cancel flag)."""
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._db.transaction() as conn:
            conn.execute(
                f"UPDATE stage_runs SET {assignments} WHERE id = ?",  # noqa: S608
                [*_stage_values(fields), run_id],
            )

    def request_cancel(self, pipeline_run_id: str | None, stage_run_id: str | None) -> None:
        """Flag runs for cancellation; the driver acts on the flag."""
        with self._db.transaction() as conn:
            if stage_run_id is not None:
                conn.execute("UPDATE stage_runs SET cancel_requested = 1 WHERE id = ?", (stage_run_id,))
            if pipeline_run_id is not None:
                conn.execute(
                    "UPDATE stage_runs SET cancel_requested = 1 WHERE pipeline_run_id = ?", (pipeline_run_id,)
                )

    def claim_gpus(self, run_id: str, wanted: int, devices: list[int]) -> list[int] | None:
        """Give ``run_id`` ``wanted`` of ``devices`` no live stage run holds; None while too few are free.

        One BEGIN IMMEDIATE transaction, so two drivers never hand out the same GPU. A run that
        already holds GPUs (a retried attempt) keeps them.
        """
        with self._db.transaction() as conn:
            held = _held_gpus(conn)
            if run_id in held:
                return list(held.pop(run_id))
            busy = {device for ids in held.values() for device in ids}
            free = [device for device in devices if device not in busy]
            if len(free) < wanted:
                return None
            chosen = free[:wanted]
            conn.execute("UPDATE stage_runs SET gpu_ids = ? WHERE id = ?", (json.dumps(chosen), run_id))
            return chosen

    def held_gpus(self) -> dict[int, str]:
        """Local GPU index → the live stage run holding it."""
        held = _held_gpus(self._db.connection)
        return {device: run_id for run_id, devices in held.items() for device in devices}

    # -- attempts ---------------------------------------------------------------------------
    def start_attempt(self, run_id: str, attempt: int, handle: dict[str, Any] | None) -> None:
        """Record a new attempt (running) and make it the run's current one."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO stage_attempts (stage_run_id, attempt, backend_handle, state, started_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    run_id,
                    attempt,
                    json.dumps(handle) if handle else None,
                    AttemptState.RUNNING.value,
                    now_iso(),
                ),
            )
            conn.execute("UPDATE stage_runs SET attempt = ? WHERE id = ?", (attempt, run_id))

    def finish_attempt(
        self,
        run_id: str,
        attempt: int,
        state: str,
        failure_kind: str | None,
        error: str | None,
        exit_code: int | None,
    ) -> Outcome:
        """Close a running attempt with its outcome (compare-and-set from running)."""
        verdict = ATTEMPT.check(AttemptState.RUNNING, state)
        if not verdict:
            return verdict
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE stage_attempts"
                " SET state = ?, failure_kind = ?, error = ?, exit_code = ?, finished_at = ?"
                " WHERE stage_run_id = ? AND attempt = ? AND state = ?",
                (
                    state,
                    failure_kind,
                    error,
                    exit_code,
                    now_iso(),
                    run_id,
                    attempt,
                    AttemptState.RUNNING.value,
                ),
            )
        return (
            verdict if cursor.rowcount == 1 else Outcome(False, "the attempt is already closed (or unknown)")
        )

    def set_attempt_zone(self, run_id: str, attempt: int, zone: str | None) -> None:
        """Record where an attempt was tried (GCE zone)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE stage_attempts SET zone = ? WHERE stage_run_id = ? AND attempt = ?",
                (zone, run_id, attempt),
            )

    def set_attempt_handle(self, run_id: str, attempt: int, handle: dict[str, Any]) -> None:
        """Store the backend handle of an attempt (and of the run), and its zone when it has one."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE stage_attempts SET backend_handle = ?, zone = ?"
                " WHERE stage_run_id = ? AND attempt = ?",
                (json.dumps(handle), handle.get("zone"), run_id, attempt),
            )
            conn.execute(
                "UPDATE stage_runs SET backend_handle = ? WHERE id = ?", (json.dumps(handle), run_id)
            )

    # -- pipeline runs ----------------------------------------------------------------------
    def finish_pipeline(self, run_id: str, state: PipelineState, error: str | None) -> Outcome:
        """Mark a pipeline run terminal (compare-and-set from running); the lease goes with it."""
        verdict = PIPELINE.check(PipelineState.RUNNING, state)
        if not verdict:
            return verdict
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE pipeline_runs SET state = ?, error = ?, finished_at = ?, lease_owner = NULL"
                " WHERE id = ? AND state = ?",
                (state.value, error, now_iso(), run_id, PipelineState.RUNNING.value),
            )
        return verdict if cursor.rowcount == 1 else Outcome(False, f"{_LOST_RACE} (it is no longer running)")

    def take_lease(self, run_id: str, owner: str, seconds: float, pid: int) -> bool:
        """Become the driver of a pipeline run if nobody holds a live lease."""
        now = time.time()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE pipeline_runs SET lease_owner = ?, lease_expires_at = ?, driver_pid = ?"
                " WHERE id = ? AND state = ?"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
                (owner, now + seconds, pid, run_id, PipelineState.RUNNING.value, owner, now),
            )
        return cursor.rowcount == 1

    def release_lease(self, run_id: str, owner: str) -> None:
        """Give up the lease (the run is finished or the driver is stopping)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE pipeline_runs SET lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND lease_owner = ?",
                (run_id, owner),
            )
