"""The warm pool: claim an idle VM, hand it a job and wait for its ack; release, reap, clean up.

The database row (``db/warm_pool.py``) is the truth about each VM; every move is a
compare-and-set, so two servers never hand the same VM two jobs. The VM side is the agent's
``goldfish-job`` wait loop: a handover is one ``setMetadata`` of that key, and the VM's
``ack.json`` for the attempt is the only proof that it took the job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from goldfish.backends.gce.instances import label_value
from goldfish.config import WarmPool
from goldfish.db.warm_pool import WarmInstanceRow, WarmPoolRepository, deadline_after
from goldfish.errors import GoldfishError
from goldfish.states import WARM_TO_DELETING, WarmState
from goldfish.storage.paths import RunPaths, warm_state_key
from goldfish.storage.protocol import Storage
from goldfish.timeutil import now_iso, parse_iso

log = logging.getLogger("goldfish.gce")
ACK_POLL_SECONDS = 0.1
STALE_LAUNCH_SECONDS = 900
STALE_BUSY_SECONDS = 300  # a finished run is released by its driver within seconds
GONE_STATES = {"TERMINATED", "STOPPING", "STOPPED", "SUSPENDED", "SUSPENDING"}


class WarmPoolUnavailableError(GoldfishError):
    """The GCE backend was built without the project's warm-pool rows, so it has no warm pool."""

    code = "WARM_POOL_UNAVAILABLE"
    default_remedy = "Use the backend the project's server or CLI opens, which has the project database."


class InstanceApi(Protocol):
    """The part of the Compute adapter the pool uses."""

    def get(self, zone: str, name: str) -> Any:
        """The instance or None."""

    def delete(self, zone: str, name: str, *, wait: bool = True) -> None:
        """Delete (no error when gone)."""

    def set_metadata(self, zone: str, name: str, items: dict[str, str | None]) -> None:
        """Merge metadata items."""

    def set_labels(self, zone: str, name: str, labels: dict[str, str]) -> None:
        """Merge labels."""


@dataclass(frozen=True)
class Handover:
    """A warm VM that accepted a job."""

    instance: WarmInstanceRow
    waited_seconds: float


class WarmPoolService:
    """Pool decisions for one project: membership, claim + handover, release, reaping."""

    def __init__(
        self,
        settings: WarmPool,
        repo: WarmPoolRepository,
        storage: Callable[[], Storage],
        api: Callable[[], InstanceApi],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self._storage = storage
        self._api = api
        self._sleep = sleep

    # -- membership -------------------------------------------------------------------------
    def serves(self, profile: str) -> bool:
        """True when the pool is on and covers ``profile``."""
        return self.settings.enabled and (not self.settings.profiles or profile in self.settings.profiles)

    @property
    def idle_timeout_seconds(self) -> float:
        """How long an idle VM waits for its next job."""
        return self.settings.idle_timeout_minutes * 60

    def warm_metadata(self, instance: str) -> str:
        """The ``goldfish-warm`` metadata value of a pool VM."""
        return json.dumps(
            {
                "idle_timeout_seconds": self.idle_timeout_seconds,
                "state_uri": self._storage().uri(warm_state_key(instance)),
            }
        )

    def register(self, name: str, zone: str, profile: str, *, spot: bool, run_id: str, image: str) -> bool:
        """Reserve a place for a VM about to be launched for ``run_id``; False when the pool is full."""
        return self.repo.register(
            name, zone, profile, spot=spot, run_id=run_id, image=image, cap=self.settings.max_instances
        )

    def launched(self, name: str, zone: str, spot: bool) -> None:
        """The registered VM exists and runs its first job."""
        self.repo.move(
            name,
            WarmState.LAUNCHING,
            WarmState.BUSY,
            "created",
            f"in {zone}",
            zone=zone,
            spot=int(spot),
            jobs_run=1,
        )

    def launch_failed(self, name: str, error: str) -> None:
        """The registered VM was never created."""
        if self.repo.move(
            name,
            WarmState.LAUNCHING,
            WarmState.DELETING,
            "launch_failed",
            error[:500],
            last_error=error[:500],
        ):
            self.repo.move(name, WarmState.DELETING, WarmState.DELETED, "never_created")

    # -- handover ---------------------------------------------------------------------------
    def hand_over(
        self, profile: str, run_id: str, attempt: int, job_value: str, image: str
    ) -> Handover | None:
        """Give the job to an idle VM of ``profile`` and wait for its ack; None → launch cold.

        A VM that does not ack within ``ack_timeout_seconds`` (or that is gone) is deleted and
        the next idle one is tried, so one bad VM never costs more than one wait.
        """
        self.reap()
        while True:
            row = self.repo.claim(profile, run_id)
            if row is None:
                return None
            started = time.monotonic()
            problem = self._deliver(row, run_id, job_value)
            if problem is None:
                problem = self._await_ack(run_id, attempt)
            if problem is None:
                self.repo.move(
                    row.name,
                    WarmState.CLAIMED,
                    WarmState.BUSY,
                    "ack",
                    f"job {run_id} a{attempt}",
                    image=image,
                    jobs_run=row.jobs_run + 1,
                    idle_since=None,
                    idle_deadline=None,
                )
                fresh = self.repo.get(row.name) or row
                return Handover(fresh, time.monotonic() - started)
            log.warning("warm VM %s did not take job %s: %s", row.name, run_id, problem)
            self._delete(row, WarmState.CLAIMED, "no_ack", problem)

    def _deliver(self, row: WarmInstanceRow, run_id: str, job_value: str) -> str | None:
        api = self._api()
        try:
            info = api.get(row.zone, row.name)
            if info is None or str(getattr(info, "status", "")) in GONE_STATES:
                return "the VM is no longer running"
            api.set_labels(row.zone, row.name, {"goldfish-run": label_value(run_id)})
            api.set_metadata(row.zone, row.name, {"goldfish-job": job_value})
        except GoldfishError as exc:
            return exc.message
        return None

    def _await_ack(self, run_id: str, attempt: int) -> str | None:
        deadline = time.monotonic() + self.settings.ack_timeout_seconds
        key = RunPaths(run_id).ack
        while time.monotonic() < deadline:
            raw = self._storage().read_bytes(key)
            if raw:
                try:
                    ack = json.loads(raw)
                except ValueError:
                    ack = {}
                if isinstance(ack, dict) and ack.get("attempt") == attempt:
                    return None
            self._sleep(ACK_POLL_SECONDS)
        return f"no ack within {self.settings.ack_timeout_seconds:g}s"

    # -- reports ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Enabled, caps, and the live VMs by state with profile, zone, idle time and current run."""
        instances = []
        by_state: dict[str, int] = {}
        for row in self.repo.live():
            by_state[row.state.value] = by_state.get(row.state.value, 0) + 1
            instances.append(
                {
                    "name": row.name,
                    "state": row.state.value,
                    "profile": row.profile,
                    "zone": row.zone,
                    "spot": row.spot,
                    "current_run": row.current_run,
                    "jobs_run": row.jobs_run,
                    "idle_seconds": round(_age(row.idle_since), 1) if row.idle_since else None,
                    "idle_deadline": row.idle_deadline,
                    "last_error": row.last_error,
                }
            )
        return {
            "enabled": self.settings.enabled,
            "max_instances": self.settings.max_instances,
            "idle_timeout_minutes": self.settings.idle_timeout_minutes,
            "profiles": list(self.settings.profiles),
            "by_state": by_state,
            "instances": instances,
        }

    # -- after a job ------------------------------------------------------------------------
    def release(self, name: str, run_id: str) -> bool:
        """The VM finished ``run_id`` and waits for the next job (busy → idle)."""
        row = self.repo.get(name)
        if row is None or row.state != WarmState.BUSY or row.current_run != run_id:
            return False
        return self.repo.move(
            name,
            WarmState.BUSY,
            WarmState.IDLE,
            "job_done",
            f"finished {run_id}",
            current_run=None,
            idle_since=now_iso(),
            idle_deadline=deadline_after(self.idle_timeout_seconds),
        ).accepted

    def discard(self, name: str, reason: str) -> bool:
        """Delete a pool VM whatever it is doing (cancel, lost run, cleanup with force)."""
        row = self.repo.get(name)
        if row is None or row.state not in WARM_TO_DELETING:
            return False
        source = row.state
        for target in WARM_TO_DELETING[source]:  # a busy VM drains first, so its run is seen to end
            if not self.repo.move(name, source, target, "discard", reason):
                return False
            source = target
        self._finish_delete(row, reason)
        return True

    def reap(self) -> list[str]:
        """Delete idle VMs past their deadline and repair rows whose VM is gone; the names handled."""
        handled = []
        for row in self.repo.expired_idle():
            if self._delete(row, WarmState.IDLE, "idle_timeout", "idle deadline passed"):
                handled.append(row.name)
        for row in self.repo.live():
            if self._repair(row):
                handled.append(row.name)
        return handled

    def _repair(self, row: WarmInstanceRow) -> bool:
        """Finish what a crashed server left half done with one VM; True when it acted."""
        age = _age(row.updated_at)
        if row.state == WarmState.LAUNCHING and age > STALE_LAUNCH_SECONDS:
            self.launch_failed(row.name, "the launch never finished")
            return True
        if row.state == WarmState.DELETING:
            self._finish_delete(row, "finishing an earlier delete")
            return True
        if row.state == WarmState.CLAIMED and age > 2 * self.settings.ack_timeout_seconds + 60:
            return self._delete(row, WarmState.CLAIMED, "stale_claim", "the handover never finished")
        stale_busy = row.state == WarmState.BUSY and row.current_run is not None and age > STALE_BUSY_SECONDS
        if stale_busy and self._finished(str(row.current_run)):
            return self.release(row.name, str(row.current_run))  # the server never released it
        return False

    def _finished(self, run_id: str) -> bool:
        return self._storage().read_bytes(RunPaths(run_id).exit_code) is not None

    def cleanup(self, *, force: bool) -> list[str]:
        """Delete idle VMs (and, with ``force``, busy ones too); returns the names deleted."""
        deleted = self.reap()
        for row in self.repo.live():
            if row.name in deleted:
                continue
            wanted = row.state == WarmState.IDLE or (
                force
                and row.state in (WarmState.BUSY, WarmState.CLAIMED, WarmState.DRAINING, WarmState.LAUNCHING)
            )
            if wanted and self.discard(row.name, "warm_pool_cleanup" + (" (force)" if force else "")):
                deleted.append(row.name)
        return deleted

    def _delete(self, row: WarmInstanceRow, source: WarmState, event: str, detail: str) -> bool:
        if not self.repo.move(
            row.name, source, WarmState.DELETING, event, detail[:500], last_error=detail[:500]
        ):
            return False
        self._finish_delete(row, detail)
        return True

    def _finish_delete(self, row: WarmInstanceRow, detail: str) -> None:
        try:
            self._api().delete(row.zone, row.name, wait=True)
        except GoldfishError as exc:
            log.warning("could not delete warm VM %s yet: %s", row.name, exc.message)
            return
        self.repo.move(row.name, WarmState.DELETING, WarmState.DELETED, "deleted", detail[:500])


def _age(at: str) -> float:
    return time.time() - parse_iso(at).timestamp()
