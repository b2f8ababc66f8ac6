"""The warm pool of reusable GCE VMs: one row per instance, every state change a compare-and-set.

The states and the moves between them are the ``WARM`` table in ``states.py``; anything else is
refused with the reason.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from goldfish.db.database import Database
from goldfish.states import WARM, WARM_LIVE, WARM_NEW, Outcome, WarmState
from goldfish.timeutil import now_iso, parse_iso

LIVE_STATES = WARM.names(WARM_LIVE)
_COLUMNS = (
    "name, zone, profile, spot, state, current_run, image, jobs_run, idle_since, idle_deadline,"
    " created_at, updated_at, last_error"
)
_UPDATABLE = {"zone", "spot", "current_run", "image", "jobs_run", "idle_since", "idle_deadline", "last_error"}


@dataclass(frozen=True)
class WarmInstanceRow:
    """One VM of the warm pool."""

    name: str
    zone: str
    profile: str
    spot: bool
    state: WarmState
    current_run: str | None
    image: str | None
    jobs_run: int
    idle_since: str | None
    idle_deadline: str | None
    created_at: str
    updated_at: str
    last_error: str | None


def _row(row: sqlite3.Row) -> WarmInstanceRow:
    values = [row[i] for i in range(13)]
    values[3] = bool(values[3])
    values[4] = WarmState(values[4])
    return WarmInstanceRow(*values)


def deadline_after(seconds: float) -> str:
    """The ISO time ``seconds`` from now (same format as ``now_iso``, so strings compare in order)."""
    moment = parse_iso(now_iso()) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WarmPoolRepository:
    """SQL for ``warm_instances`` and ``warm_instance_transitions``."""

    def __init__(self, db: Database):
        self._db = db

    def register(
        self, name: str, zone: str, profile: str, *, spot: bool, run_id: str, image: str | None, cap: int
    ) -> bool:
        """Add a VM about to be launched for ``run_id`` (state ``launching``) if the pool has room.

        Counting and inserting happen in one write transaction, so two servers never both take
        the last place.
        """
        now = now_iso()
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        with self._db.transaction() as conn:
            live = conn.execute(
                f"SELECT COUNT(*) FROM warm_instances WHERE state IN ({placeholders})",  # noqa: S608
                LIVE_STATES,
            ).fetchone()[0]
            if live >= cap:
                return False
            conn.execute(
                "INSERT INTO warm_instances (name, zone, profile, spot, state, current_run, image,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, zone, profile, int(spot), WarmState.LAUNCHING.value, run_id, image, now, now),
            )
            _log(conn, name, WARM_NEW, WarmState.LAUNCHING, "register", f"for {run_id}", now)
        return True

    def move(
        self,
        name: str,
        source: WarmState,
        target: WarmState,
        event: str,
        detail: str | None = None,
        **fields: Any,
    ) -> Outcome:
        """Move ``name`` from ``source`` to ``target`` if the table allows it and it is still there.

        Returns:
            Accepted when this call moved it; rejected with the reason otherwise.
        """
        verdict = WARM.check(source, target)
        if not verdict:
            return verdict
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not a warm instance column: {sorted(unknown)}")
        now = now_iso()
        updates = {"state": WarmState(target).value, "updated_at": now, **fields}
        assignments = ", ".join(f"{key} = ?" for key in updates)
        with self._db.transaction() as conn:
            moved = conn.execute(
                f"UPDATE warm_instances SET {assignments} WHERE name = ? AND state = ?",  # noqa: S608
                (*updates.values(), name, source),
            ).rowcount
            if not moved:
                return Outcome(False, f"another process moved it first (it is no longer {source})")
            _log(conn, name, WarmState(source), WarmState(target), event, detail, now)
        return verdict

    def claim(self, profile: str, run_id: str, margin_seconds: float = 30.0) -> WarmInstanceRow | None:
        """Take one idle VM of ``profile`` for ``run_id`` (one compare-and-set); None when there is none.

        A VM whose idle deadline is less than ``margin_seconds`` away is left alone: it may power
        itself off before it reads the job.
        """
        now = now_iso()
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM warm_instances WHERE state = ? AND profile = ?"  # noqa: S608
                " AND (idle_deadline IS NULL OR idle_deadline > ?) ORDER BY idle_since DESC LIMIT 1",
                (WarmState.IDLE.value, profile, deadline_after(margin_seconds)),
            ).fetchone()
            if row is None:
                return None
            moved = conn.execute(
                "UPDATE warm_instances SET state = ?, current_run = ?, updated_at = ?"
                " WHERE name = ? AND state = ?",
                (WarmState.CLAIMED.value, run_id, now, row["name"], WarmState.IDLE.value),
            ).rowcount
            if not moved:
                return None
            _log(conn, row["name"], WarmState.IDLE, WarmState.CLAIMED, "claim", f"for {run_id}", now)
        return self.get(row["name"])

    def get(self, name: str) -> WarmInstanceRow | None:
        """One VM by name."""
        row = self._db.connection.execute(
            f"SELECT {_COLUMNS} FROM warm_instances WHERE name = ?",  # noqa: S608
            (name,),
        ).fetchone()
        return _row(row) if row is not None else None

    def live(self) -> list[WarmInstanceRow]:
        """Every VM not yet deleted, oldest first."""
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        rows = self._db.connection.execute(
            f"SELECT {_COLUMNS} FROM warm_instances WHERE state IN ({placeholders})"  # noqa: S608
            " ORDER BY created_at",
            LIVE_STATES,
        )
        return [_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Live VMs per state (one indexed aggregate)."""
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        rows = self._db.connection.execute(
            f"SELECT state, COUNT(*) FROM warm_instances WHERE state IN ({placeholders})"  # noqa: S608
            " GROUP BY state",
            LIVE_STATES,
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def expired_idle(self) -> list[WarmInstanceRow]:
        """Idle VMs whose idle deadline has passed (the reaper deletes them)."""
        rows = self._db.connection.execute(
            f"SELECT {_COLUMNS} FROM warm_instances WHERE state = ? AND idle_deadline <= ?",  # noqa: S608
            (WarmState.IDLE.value, now_iso()),
        )
        return [_row(row) for row in rows]

    def transitions(self, name: str) -> list[dict[str, Any]]:
        """State history of one VM."""
        rows = self._db.connection.execute(
            "SELECT from_state, to_state, event, at, detail FROM warm_instance_transitions"
            " WHERE name = ? ORDER BY id",
            (name,),
        )
        return [dict(row) for row in rows]


def _log(
    conn: sqlite3.Connection, name: str, source: str, target: str, event: str, detail: str | None, at: str
) -> None:
    conn.execute(
        "INSERT INTO warm_instance_transitions (name, from_state, to_state, event, at, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, str(source), str(target), event, at, detail),
    )
