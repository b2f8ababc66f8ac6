"""The warm pool's bookkeeping on a real project database: cap, claim, release, reaping, repair.

The Compute API is the outer boundary here, so it is a small dict of instances; the storage is
the real local store (ack and exit-code objects), the database the project's SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from goldfish.backends.gce.warm_pool import WarmPoolService
from goldfish.config import WarmPool
from goldfish.context import ServerContext
from goldfish.db.warm_pool import WarmPoolRepository
from goldfish.states import WarmState
from goldfish.storage.local import LocalStorage
from goldfish.storage.paths import RunPaths

ZONE = "us-central1-a"


@dataclass
class Vm:
    status: str = "RUNNING"


@dataclass
class InstancesByName:
    """The Compute API as the pool sees it: get, delete, set_metadata, set_labels."""

    vms: dict[str, Vm] = field(default_factory=dict)
    metadata: dict[str, dict[str, str | None]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def get(self, zone: str, name: str) -> Vm | None:
        return self.vms.get(name)

    def delete(self, zone: str, name: str, *, wait: bool = True) -> None:
        self.vms.pop(name, None)
        self.deleted.append(name)

    def set_metadata(self, zone: str, name: str, items: dict[str, str | None]) -> None:
        self.metadata.setdefault(name, {}).update(items)

    def set_labels(self, zone: str, name: str, labels: dict[str, str]) -> None:
        """Labels are not looked at here."""


@pytest.fixture
def repo(context: ServerContext) -> WarmPoolRepository:
    return WarmPoolRepository(context.db)


def _pool(
    repo: WarmPoolRepository, store: LocalStorage, api: InstancesByName, **settings: object
) -> WarmPoolService:
    config = WarmPool(enabled=True, **settings)
    return WarmPoolService(config, repo, lambda: store, lambda: api, sleep=lambda _s: None)


def _idle_vm(pool: WarmPoolService, api: InstancesByName, name: str, profile: str = "h100-spot") -> None:
    assert pool.register(name, ZONE, profile, spot=True, run_id="stage-000000000001", image="img:1")
    pool.launched(name, ZONE, spot=True)
    assert pool.release(name, "stage-000000000001")
    api.vms[name] = Vm()


def _backdate(context: ServerContext, name: str, seconds: int) -> None:
    with sqlite3.connect(context.paths.database) as conn:
        conn.execute(
            "UPDATE warm_instances SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) WHERE name = ?",
            (f"-{seconds} seconds", name),
        )


def test_register_when_the_pool_is_full_refuses_the_next_vm(repo: WarmPoolRepository, tmp_path: Path) -> None:
    pool = _pool(repo, LocalStorage(tmp_path / "store"), InstancesByName(), max_instances=1)
    assert pool.register("vm-a", ZONE, "h100-spot", spot=True, run_id="stage-000000000001", image="i")
    assert not pool.register("vm-b", ZONE, "h100-spot", spot=True, run_id="stage-000000000002", image="i")
    assert [row.name for row in repo.live()] == ["vm-a"]


def test_claim_when_two_runs_race_for_one_idle_vm_gives_it_to_exactly_one(
    repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api = InstancesByName()
    pool = _pool(repo, LocalStorage(tmp_path / "store"), api)
    _idle_vm(pool, api, "vm-a")
    results: list[object] = []
    barrier = threading.Barrier(4)

    def claim(run: str) -> None:
        barrier.wait()
        results.append(repo.claim("h100-spot", run))

    threads = [threading.Thread(target=claim, args=(f"stage-00000000001{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [row for row in results if row is not None]
    assert len(winners) == 1
    assert repo.get("vm-a") is not None and repo.get("vm-a").state == "claimed"  # type: ignore[union-attr]


def test_hand_over_when_the_vm_acks_marks_it_busy_with_the_new_run(
    repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api, store = InstancesByName(), LocalStorage(tmp_path / "store")
    pool = _pool(repo, store, api)
    _idle_vm(pool, api, "vm-a")
    run = "stage-000000000009"
    store.write_bytes(RunPaths(run).ack, json.dumps({"instance": "vm-a", "attempt": 1}).encode())
    handover = pool.hand_over("h100-spot", run, 1, '{"stage_run_id": "x"}', "img:2")
    assert handover is not None and handover.instance.name == "vm-a"
    row = repo.get("vm-a")
    assert row is not None and (row.state, row.current_run, row.image) == ("busy", run, "img:2")
    assert api.metadata["vm-a"]["goldfish-job"] == '{"stage_run_id": "x"}'


def test_hand_over_when_no_ack_comes_deletes_the_vm_and_says_go_cold(
    repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api = InstancesByName()
    pool = _pool(repo, LocalStorage(tmp_path / "store"), api, ack_timeout_seconds=0.05)
    _idle_vm(pool, api, "vm-a")
    assert pool.hand_over("h100-spot", "stage-000000000009", 1, "{}", "img:2") is None
    assert api.deleted == ["vm-a"]
    row = repo.get("vm-a")
    assert row is not None and row.state == "deleted"
    assert [t["event"] for t in repo.transitions("vm-a")][-3:] == ["claim", "no_ack", "deleted"]


def test_hand_over_when_the_profile_differs_leaves_the_idle_vm_alone(
    repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api = InstancesByName()
    pool = _pool(repo, LocalStorage(tmp_path / "store"), api)
    _idle_vm(pool, api, "vm-a", profile="a100-spot")
    assert pool.hand_over("h100-spot", "stage-000000000009", 1, "{}", "img") is None
    assert repo.get("vm-a").state == "idle"  # type: ignore[union-attr]


def test_reap_when_a_claim_or_a_finished_run_was_left_by_a_crash_repairs_both(
    context: ServerContext, repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api, store = InstancesByName(), LocalStorage(tmp_path / "store")
    pool = _pool(repo, store, api, ack_timeout_seconds=1)
    _idle_vm(pool, api, "vm-claimed")
    assert repo.claim("h100-spot", "stage-000000000007") is not None
    assert pool.register("vm-busy", ZONE, "h100-spot", spot=True, run_id="stage-000000000008", image="i")
    pool.launched("vm-busy", ZONE, spot=True)
    store.write_bytes(RunPaths("stage-000000000008").exit_code, b"0")
    _backdate(context, "vm-claimed", 120)
    _backdate(context, "vm-busy", 600)
    assert sorted(pool.reap()) == ["vm-busy", "vm-claimed"]
    assert repo.get("vm-claimed").state == "deleted"  # type: ignore[union-attr]
    assert repo.get("vm-busy").state == "idle"  # type: ignore[union-attr]


def test_cleanup_when_forced_deletes_busy_vms_too(repo: WarmPoolRepository, tmp_path: Path) -> None:
    api = InstancesByName()
    pool = _pool(repo, LocalStorage(tmp_path / "store"), api)
    _idle_vm(pool, api, "vm-idle")
    assert pool.register("vm-busy", ZONE, "h100-spot", spot=True, run_id="stage-000000000008", image="i")
    pool.launched("vm-busy", ZONE, spot=True)
    assert pool.cleanup(force=False) == ["vm-idle"]
    assert repo.get("vm-busy").state == "busy"  # type: ignore[union-attr]
    assert pool.cleanup(force=True) == ["vm-busy"]
    assert [row.name for row in repo.live()] == []
    refused = repo.move("vm-busy", WarmState.DELETED, WarmState.IDLE, "resurrect")
    assert not refused.accepted
    assert refused.reason == "deleted is final: it never moves"


def test_rows_when_read_back_carry_the_state_enum_and_the_summary_plain_names(
    repo: WarmPoolRepository, tmp_path: Path
) -> None:
    api = InstancesByName()
    pool = _pool(repo, LocalStorage(tmp_path / "store"), api)
    _idle_vm(pool, api, "vm-a")

    row = repo.get("vm-a")
    assert row is not None and row.state is WarmState.IDLE
    summary = pool.summary()
    assert summary["by_state"] == {"idle": 1}
    assert json.loads(json.dumps(summary))["instances"][0]["state"] == "idle"
    assert type(summary["instances"][0]["state"]) is str
