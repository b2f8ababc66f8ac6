"""Cold launch: find a zone (and, if allowed, a provisioning model) where GCE creates the VM.

The order, as ``shared/spec/execution.md`` fixes it: the profile's zones in order with the
zones to avoid (e.g. where the run was just preempted) moved to the end; zones an error names
as having capacity jump the queue; capacity/quota failures, and invalid requests only one zone
refuses (its machine or accelerator type is not offered there), move to the next zone; once
every zone failed on spot, the same zones again on-demand when the profile allows; credentials
and other invalid-request failures stop at once; network failures retry the same zone with
backoff, unless the instance came up anyway (then it is kept). Every
try is recorded, and an instance a failed insert left behind is deleted before the next try.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from goldfish.backends.gce.compute import InstanceInfo
from goldfish.backends.gce.failures import FALL_OVER, FATAL, LaunchFailure
from goldfish.backends.gce.instances import InstanceBody
from goldfish.errors import GoldfishError
from goldfish.timeutil import now_iso

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0


class LaunchApi(Protocol):
    """The part of :class:`~goldfish.backends.gce.compute.ComputeApi` a launch needs."""

    def insert(self, zone: str, body: InstanceBody, timeout: float = ...) -> None:
        """Create the instance; raise LaunchFailure."""

    def get(self, zone: str, name: str) -> InstanceInfo | None:
        """The instance, or None."""

    def delete(self, zone: str, name: str, *, wait: bool = ...) -> None:
        """Delete the instance (gone already is fine)."""


@dataclass(frozen=True)
class LaunchTry:
    """One insert: where, which model, and why it failed (``category`` None: it created the VM)."""

    zone: str
    spot: bool
    category: str | None
    error: str | None
    at: str


@dataclass(frozen=True)
class ProvisionResult:
    """The instance a launch ended with, and every try it took to get there."""

    name: str
    zone: str
    spot: bool
    created: bool
    tries: list[LaunchTry]


class LaunchError(GoldfishError):
    """No zone produced an instance; ``tries`` says what happened in each.

    The code is always ``GCE_LAUNCH_FAILED``; ``category`` (also in ``details``) is the final
    category: ``capacity``/``quota`` when every zone was out of them, else the stopping failure's.
    """

    code = "GCE_LAUNCH_FAILED"

    def __init__(self, message: str, *, tries: list[LaunchTry], category: str, remedy: str):
        self.tries = list(tries)
        self.category = category
        details = {"category": category, "tries": [asdict(t) for t in self.tries]}
        super().__init__(message, details=details, remedy=remedy)


@dataclass
class _Launch:
    """The state of one :func:`launch_cold` call."""

    api: LaunchApi
    make_body: Callable[[str, bool], InstanceBody]
    network_retries: int
    sleep: Callable[[float], None]
    tries: list[LaunchTry]

    def run_pass(self, order: list[str], spot: bool) -> ProvisionResult | None:
        """Try every zone once on this model; hinted zones jump the queue."""
        queue = list(order)
        while queue:
            zone = queue.pop(0)
            outcome = self.try_zone(zone, spot)
            if isinstance(outcome, ProvisionResult):
                return outcome
            hinted = [z for z in outcome.hint_zones if z in queue]
            queue = hinted + [z for z in queue if z not in hinted]
        return None

    def try_zone(self, zone: str, spot: bool) -> ProvisionResult | LaunchFailure:
        """Insert in ``zone``; network failures retried here with exponential backoff."""
        for attempt in range(self.network_retries + 1):
            body = self.make_body(zone, spot)
            try:
                self.api.insert(zone, body)
            except LaunchFailure as failure:
                self.record(zone, spot, failure)
                if failure.category == "network" and self.came_up(zone, body.name):
                    # The call failed on our side (a read timeout, a lost answer), not GCE's.
                    return ProvisionResult(
                        name=body.name, zone=zone, spot=spot, created=True, tries=list(self.tries)
                    )
                self.remove_leftover(zone, body.name)
                if failure.category in FATAL and not failure.zone_scoped:
                    raise _fatal(failure, self.tries) from failure
                if failure.category != "network" or attempt == self.network_retries:
                    return failure
                self.sleep(min(BACKOFF_BASE_SECONDS * 2**attempt, BACKOFF_MAX_SECONDS))
                continue
            self.tries.append(LaunchTry(zone=zone, spot=spot, category=None, error=None, at=now_iso()))
            return ProvisionResult(name=body.name, zone=zone, spot=spot, created=True, tries=list(self.tries))
        raise AssertionError("unreachable: the loop returns on its last attempt")  # pragma: no cover

    def record(self, zone: str, spot: bool, failure: LaunchFailure) -> None:
        text = failure.message
        entry = LaunchTry(zone=zone, spot=spot, category=failure.category, error=text, at=now_iso())
        self.tries.append(entry)
        log.info("insert in %s (%s) failed: %s", zone, "spot" if spot else "on-demand", text)

    def came_up(self, zone: str, name: str) -> bool:
        """Whether the instance of a try whose answer was lost exists and is booting or running."""
        try:
            info = self.api.get(zone, name)
        except LaunchFailure:
            return False
        if info is not None and info.status in ("PROVISIONING", "STAGING", "RUNNING"):
            log.info("%s in %s came up although its insert call failed: keeping it", name, zone)
            return True
        return False

    def remove_leftover(self, zone: str, name: str) -> None:
        """Delete what a failed insert left behind (GCE may keep a TERMINATED shell)."""
        try:
            if self.api.get(zone, name) is not None:
                log.info("deleting %s in %s left by a failed insert", name, zone)
                self.api.delete(zone, name, wait=True)
        except LaunchFailure as failure:
            log.warning("could not delete %s in %s after a failed insert: %s", name, zone, failure.message)


def zone_order(zones: Sequence[str], avoid_zones: Sequence[str] = ()) -> list[str]:
    """``zones`` without duplicates, the avoided ones (still tried) moved to the end."""
    unique = list(dict.fromkeys(zones))
    avoided = set(avoid_zones)
    return [z for z in unique if z not in avoided] + [z for z in unique if z in avoided]


def launch_cold(
    api: LaunchApi,
    zones: list[str],
    *,
    spot: bool,
    on_demand_fallback: bool,
    make_body: Callable[[str, bool], InstanceBody],
    avoid_zones: Sequence[str] = (),
    network_retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> ProvisionResult:
    """Create one instance, trying zones (and spot → on-demand) in the order the module describes.

    ``make_body(zone, spot)`` is called for every try (network retries included). A fresh name
    per call is safest; reusing one name works because what a failed try left is deleted first
    (if that delete fails, a retry in the same zone ends as ``conflict`` and moves on).
    Raises :class:`LaunchError` (with every try) when no zone worked, or at once on a credentials
    or invalid-request failure.
    """
    order = zone_order(zones, avoid_zones)
    if not order:
        raise LaunchError(
            "No zones to launch in.",
            tries=[],
            category="invalid_request",
            remedy="List zones in gce.zones in goldfish.yaml or in the profile's zones.",
        )
    launch = _Launch(api=api, make_body=make_body, network_retries=network_retries, sleep=sleep, tries=[])
    models = [spot, False] if spot and on_demand_fallback else [spot]
    for model in models:
        result = launch.run_pass(order, model)
        if result is not None:
            return result
    raise _exhausted(launch.tries, spot=spot, on_demand_fallback=on_demand_fallback)


def _describe(tries: list[LaunchTry]) -> str:
    parts = [f"{t.zone} ({'spot' if t.spot else 'on-demand'}): {t.error}" for t in tries]
    return "; ".join(parts)


def _fatal(failure: LaunchFailure, tries: list[LaunchTry]) -> LaunchError:
    return LaunchError(
        f"GCE refused the launch in {failure.zone or 'the zone'} ({failure.category}); no other zone "
        f"was tried because the same request would fail there too. Tries: {_describe(tries)}",
        tries=tries,
        category=failure.category,
        remedy=failure.remedy,
    )


def _exhausted(tries: list[LaunchTry], *, spot: bool, on_demand_fallback: bool) -> LaunchError:
    categories = {t.category for t in tries if t.category}
    if categories == {"quota"}:
        category = "quota"
    elif categories and categories <= FALL_OVER:
        category = "capacity"
    else:
        category = tries[-1].category or "unknown"
    fallback = ""
    if spot and not on_demand_fallback:
        fallback = " or a profile that allows on-demand fallback"
    remedy = (
        f"Add zones to gce.zones (or the profile's zones){fallback}, raise quota where the tries say "
        "quota, or run again later."
    )
    return LaunchError(
        f"No zone could create the instance after {len(tries)} tries: {_describe(tries)}",
        tries=tries,
        category=category,
        remedy=remedy,
    )
