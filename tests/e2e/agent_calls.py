"""One call per tool that must succeed and one that must fail, on a project prepared for them.

Both agent-client tests (the TypeScript SDK client in ``ts_client/`` and the Python client) drive
the same plan: :func:`prepare` makes a project where every tool can succeed (two workspaces with
runs, one failed and resumable, a second version, a data file, spare workspaces to hibernate and
delete), and :func:`plan` lists, in an order where each call finds what it needs, for each tool a
call that fails (with the error code it must carry) and then one that succeeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON, call
from tests.integration.pipeline_fixtures import TWO_STAGES, by_stage, write_pipeline

SPEC: dict[str, Any] = {"primary_metric": "loss", "direction": "minimize"}
WAIT_SECONDS = 120
UNKNOWN_STAGE_RUN = "stage-000000000000"


@dataclass(frozen=True)
class Prepared:
    """Ids of what :func:`prepare` made."""

    root: Path
    prep: str
    train: str
    pipeline_run: str
    record: str
    failed_pipeline_run: str
    backup: str


@dataclass(frozen=True)
class ToolCall:
    """One tools/call: its arguments and the error code it must fail with (None: it succeeds)."""

    tool: str
    arguments: dict[str, Any]
    code: str | None = None
    expect: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expect", "success" if self.code is None else "error")

    def as_json(self) -> dict[str, Any]:
        """The call as the TypeScript client reads it."""
        return asdict(self)


async def _ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await call(client, tool, **arguments)
    assert result["success"] is True, (tool, result)
    return result


async def _prepare(root: Path) -> Prepared:
    async with Client(server_for(root), mode="legacy") as client:
        await _ok(client, "create_workspace", name="baseline", goal="learn the task", reason=LONG_REASON)
        mounted = await _ok(client, "mount", workspace="baseline", slot="w1", reason=LONG_REASON)
        slot = Path(mounted["mount"]["slot_path"])
        write_pipeline(slot, TWO_STAGES, {"prep": {"metrics": 3}, "train": {"metrics": 5}})
        first = await _run(client)
        assert first["state"] == "completed", first
        flag = root / "data" / "ready.flag"
        override = {"train": {"needs_file": str(flag)}}
        second = await _run(client, config_override=override)
        assert second["state"] == "failed", second
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text("ready\n", encoding="utf-8")  # resume_pipeline will now succeed
        (flag.parent / "raw.csv").write_text("x,y\n1,2\n", encoding="utf-8")
        (slot / "notes.md").write_text("second version\n", encoding="utf-8")
        await _ok(client, "save_version", slot="w1", message="a second version to roll back from")
        for name in ("parked", "scratch"):
            await _ok(client, "create_workspace", name=name, goal="a spare line of work", reason=LONG_REASON)
        await _ok(client, "mount", workspace="parked", slot="w2", reason=LONG_REASON)
        backup = await _ok(client, "create_backup", reason=LONG_REASON)
    stages = by_stage(first["stages"])
    return Prepared(
        root=root,
        prep=stages["prep"]["stage_run_id"],
        train=stages["train"]["stage_run_id"],
        pipeline_run=first["pipeline_run_id"],
        record=first["record_id"],
        failed_pipeline_run=second["pipeline_run_id"],
        backup=backup["backup_id"],
    )


async def _run(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await _ok(
        client,
        "run",
        workspace="w1",
        reason=LONG_REASON,
        results_spec=SPEC,
        wait=True,
        wait_seconds=WAIT_SECONDS,
        **arguments,
    )
    assert result["still_running"] is False, result
    submission: dict[str, Any] = result["run"]
    return submission


def prepare(root: Path) -> Prepared:
    """Make the project at ``root`` (already initialized) ready for :func:`plan`."""
    return anyio.run(_prepare, root)


def plan(p: Prepared) -> list[ToolCall]:
    """Every tool twice: failing (with its code), then succeeding; each call finds what it needs."""
    why = {"reason": LONG_REASON}
    short = {"reason": "too short"}
    results = {**SPEC, "value": 0.2, "dataset_split": "val", "ml_outcome": "success", "notes": "fine"}
    data = p.root / "data" / "raw.csv"
    cases: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
        ("status", {"verbose": True}, "INVALID_ARGUMENT", {}),
        ("dashboard", {"limit": 5}, "INVALID_ARGUMENT", {}),
        ("goldfish_version", {"full": True}, "INVALID_ARGUMENT", {}),
        ("validate_config", {"workspace": "nowhere"}, "WORKSPACE_NOT_FOUND", {"workspace": "baseline"}),
        ("reload_config", {"path": "goldfish.yaml"}, "INVALID_ARGUMENT", {}),
        ("list_profiles", {"all": True}, "INVALID_ARGUMENT", {}),
        (
            "initialize_project",
            {"project_name": "other", "project_root": str(p.root.parent / "other")},
            "PROJECT_EXISTS",
            {"project_name": "testproj", "project_root": str(p.root)},
        ),
        ("list_workspaces", {"limit": "many"}, "INVALID_ARGUMENT", {}),
        (
            "inspect_workspace",
            {"name": "nowhere"},
            "WORKSPACE_NOT_FOUND",
            {"name": "baseline", "include": ["pipeline"]},
        ),
        ("diff", {"target": "nowhere@v1"}, "WORKSPACE_NOT_FOUND", {"target": "baseline@v2"}),
        (
            "inspect_run",
            {"run_id": UNKNOWN_STAGE_RUN},
            "RUN_NOT_FOUND",
            {"run_id": p.train, "include": ["metadata", "manifest", "attempts", "metrics", "svs", "timings"]},
        ),
        ("get_svs_findings", {"run_id": UNKNOWN_STAGE_RUN}, "RUN_NOT_FOUND", {"run_id": p.pipeline_run}),
        ("review_pipeline", {"workspace": "nowhere"}, "WORKSPACE_NOT_FOUND", {"workspace": "baseline"}),
        (
            "manage_patterns",
            {"action": "approve", "pattern_id": "pat-000000000000", **why},
            "PATTERN_NOT_FOUND",
            {"action": "list"},
        ),
        ("logs", {"run_id": p.train, "tail": 0}, "INVALID_ARGUMENT", {"run_id": p.train, "stream": "both"}),
        (
            "list_runs",
            {"state": "exploded"},
            "INVALID_ARGUMENT",
            {"workspace": "baseline", "state": "completed"},
        ),
        ("get_lineage", {"run_id": p.prep, "direction": "sideways"}, "INVALID_ARGUMENT", {"run_id": p.prep}),
        ("get_metrics", {"run_id": p.train, "max_points": 1}, "INVALID_ARGUMENT", {"run_id": p.train}),
        (
            "compare_runs",
            {"run_a": UNKNOWN_STAGE_RUN, "run_b": p.train},
            "RUN_NOT_FOUND",
            {"run_a": p.pipeline_run, "run_b": p.failed_pipeline_run},
        ),
        (
            "plot_metrics",
            {"run_ids": [p.train], "metric": "accuracy"},
            "METRIC_NOT_FOUND",
            {"run_ids": [p.train], "metric": "loss"},
        ),
        ("list_history", {"workspace": "nowhere"}, "WORKSPACE_NOT_FOUND", {"workspace": "baseline"}),
        ("inspect_record", {"ref": UNKNOWN_STAGE_RUN}, "RECORD_NOT_FOUND", {"ref": p.record}),
        ("list_unfinalized_runs", {"limit": -1}, "INVALID_ARGUMENT", {}),
        (
            "get_experiment_context",
            {"workspace": "nowhere"},
            "WORKSPACE_NOT_FOUND",
            {"workspace": "baseline"},
        ),
        (
            "get_workspace_thoughts",
            {"workspace": "nowhere"},
            "WORKSPACE_NOT_FOUND",
            {"workspace": "baseline"},
        ),
        ("get_audit_log", {"offset": -5}, "INVALID_ARGUMENT", {}),
        ("get_build_status", {"build_id": "nope"}, "INVALID_ARGUMENT", {}),
        ("warm_pool_status", {"zone": "europe-west4-a"}, "INVALID_ARGUMENT", {}),
        ("list_secrets", {"name": "HF_TOKEN"}, "INVALID_ARGUMENT", {}),
        ("manage_base_images", {"action": "explode"}, "INVALID_ARGUMENT", {"action": "list"}),
        (
            "manage_versions",
            {"workspace": "baseline", "action": "tag", "version": "v99", "tag": "t1", **why},
            "VERSION_NOT_FOUND",
            {"workspace": "baseline", "action": "list"},
        ),
        ("manage_sources", {"action": "get", "name": "missing"}, "SOURCE_NOT_FOUND", {"action": "list"}),
        (
            "create_workspace",
            {"name": "bad name!", "goal": "g", **why},
            "INVALID_ARGUMENT",
            {"name": "fresh", "goal": "try another idea", **why},
        ),
        (
            "mount",
            {"workspace": "fresh", "slot": "w1", **why},
            "SLOT_OCCUPIED",
            {"workspace": "fresh", "slot": "w3", **why},
        ),
        (
            "save_version",
            {"slot": "w9", "message": "m"},
            "SLOT_NOT_FOUND",
            {"slot": "w3", "message": "no change"},
        ),
        (
            "log_thought",
            {"thought": 42},
            "INVALID_ARGUMENT",
            {"thought": "loss looks fine", "workspace": "baseline"},
        ),
        (
            "finalize_run",
            {"record_or_run_id": p.record, "results": {"primary_metric": "loss"}},
            "INVALID_ARGUMENT",
            {"record_or_run_id": p.record, "results": results},
        ),
        (
            "save_results_spec",
            {"stage_run_id": p.train, "spec": {**SPEC, "direction": "sideways"}},
            "INVALID_ARGUMENT",
            {"stage_run_id": p.train, "spec": SPEC, **why},
        ),
        ("tag_record", {"ref": p.record, "tag": "v3"}, "INVALID_ARGUMENT", {"ref": p.record, "tag": "best"}),
        (
            "register_source",
            {"name": "etc", "uri": "/etc/hostname", "description": "not ours", **why},
            "INVALID_PATH",
            {"name": "raw", "uri": str(data), "description": "two numbers", **why},
        ),
        (
            "promote_artifact",
            {"run_id": p.prep, "output_name": "nothing", "source_name": "x", **why},
            "INVALID_ARGUMENT",
            {"run_id": p.prep, "output_name": "features", "source_name": "features_v1", **why},
        ),
        (
            "run",
            {"workspace": "baseline", **short},
            "REASON_REQUIRED",
            {"workspace": "baseline", **why, "results_spec": SPEC},
        ),
        (
            "resume_pipeline",
            {"pipeline_run_id": p.pipeline_run, **why},
            "INVALID_ARGUMENT",
            {"pipeline_run_id": p.failed_pipeline_run, **why},
        ),
        ("cancel", {"run_id": UNKNOWN_STAGE_RUN, **why}, "RUN_NOT_FOUND", {"run_id": p.pipeline_run, **why}),
        (
            "rollback",
            {"slot": "w1", "version": "v99", **why},
            "VERSION_NOT_FOUND",
            {"slot": "w1", "version": "v1", **why},
        ),
        ("hibernate", {"slot": "w2", **short}, "REASON_REQUIRED", {"slot": "w2", **why}),
        (
            "delete_workspace",
            {"workspace": "baseline", **why},
            "WORKSPACE_MOUNTED",
            {"workspace": "scratch", **why},
        ),
        ("warm_pool_cleanup", short, "REASON_REQUIRED", why),
        ("create_backup", short, "REASON_REQUIRED", why),
        ("list_backups", {"limit": 0}, "INVALID_ARGUMENT", {"limit": 5}),
        (
            "restore_backup",
            {"backup_id": "bk-20000101-000000-000000", **why},
            "BACKUP_NOT_FOUND",
            {"backup_id": p.backup, "target": str(p.root.parent / "restored"), **why},
        ),
    ]
    calls = [
        call for tool, bad, code, good in cases for call in (ToolCall(tool, bad, code), ToolCall(tool, good))
    ]
    return [*calls, ToolCall("no_such_tool", {}, "UNKNOWN_TOOL")]
