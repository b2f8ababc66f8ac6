"""A dashboard test project: real workspaces and versions, and run history written the way a driver writes it.

Workspaces, versions, tags and thoughts go through the services. Runs go through the run
repository (pipeline and stage rows, attempts, state transitions, lineage), the metric repository
and the record repository, as the driver and ``finalize_run`` leave them, so the pages show a
finished run with a three-stage DAG, a failed run, and a run whose ``train`` stage is running:
the tests move it forward with the same state machine call the driver makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from goldfish.context import ServerContext
from goldfish.db.runs import LineageRow
from goldfish.ids import new_record_id
from goldfish.states import StageState
from goldfish.storage.paths import RunPaths
from goldfish.timeutil import now_iso
from tests.integration.pipeline_fixtures import THREE_STAGES

STAGES = ("prep", "train", "evaluate")
WORKSPACES = ("baseline", "wider-net")
REASON = {"why": "does a wider hidden layer lower the validation loss?"}
SPEC = {"primary_metric": "val_loss", "direction": "minimize"}


@dataclass
class DashboardProject:
    """Ids of what :func:`build` wrote."""

    root: Path
    done: str  # pipeline run of baseline, completed and finalized
    other: str  # pipeline run of wider-net, completed, other config and code
    failed: str  # pipeline run of wider-net whose train failed
    live: str  # pipeline run of baseline with train running
    live_train: str  # its running train stage run


def _save(context: ServerContext, workspace: str, slot: str, hidden: int, message: str) -> None:
    folder = context.paths.slot(slot)
    (folder / "modules").mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(THREE_STAGES, encoding="utf-8")
    for stage in STAGES:
        (folder / "modules" / f"{stage}.py").write_text(
            f"HIDDEN = {hidden}\nprint('{stage}')\n", encoding="utf-8"
        )
    context.versions.save(slot, message)


def _points(scale: float) -> list[tuple[str, int | None, float, float]]:
    at = 1_700_000_000.0
    points: list[tuple[str, int | None, float, float]] = []
    for step in range(60):
        points.append(("train_loss", step, scale * math.exp(-step / 20) + 0.05, at + step))
        points.append(("val_loss", step, scale * math.exp(-step / 25) + 0.1, at + step))
    return points


class _Writer:
    def __init__(self, context: ServerContext):
        self.context = context
        self.count = 0

    def run(self, workspace: str, version: int, states: tuple[str, str, str], hidden: int) -> list[str]:
        """A pipeline run with three stage runs in ``states``; returns [pipeline id, *stage ids]."""
        context = self.context
        self.count += 1
        n = self.count
        prun = f"prun-{n:012x}"
        ids = [f"stage-{n:010x}{i:02x}" for i in range(3)]
        running = any(s not in ("completed", "failed", "skipped") for s in states)
        ws = context.core.workspace(workspace)
        now = now_iso()
        with context.db.transaction() as conn:
            context.runs.insert_pipeline_run(
                conn,
                {
                    "id": prun,
                    "workspace_id": ws.id,
                    "workspace": workspace,
                    "version_num": version,
                    "pipeline": None,
                    "state": "running",
                    "reason": REASON,
                    "results_spec": SPEC,
                    "created_at": now,
                },
            )
            for position, stage in enumerate(STAGES):
                context.runs.insert_stage_run(
                    conn,
                    {
                        "id": ids[position],
                        "pipeline_run_id": prun,
                        "workspace": workspace,
                        "version_num": version,
                        "stage": stage,
                        "module": stage,
                        "position": position,
                        "state": "pending",
                        "attempt": 0,
                        "backend": "process",
                        "cache_key": f"{n:08x}{position:056x}",
                        "timeout_seconds": 3600,
                        "config": {"hidden": hidden, "lr": 0.001, "epochs": 60},
                        "created_at": now,
                    },
                )
            context.record_rows.insert(
                conn,
                {
                    "id": new_record_id(),
                    "workspace_id": ws.id,
                    "workspace": workspace,
                    "record_type": "run",
                    "pipeline_run_id": prun,
                    "version_num": version,
                    "reason": REASON,
                    "results_spec": SPEC,
                    "created_at": now,
                },
            )
        for position, state in enumerate(states):
            self._advance(ids, position, state, hidden)
        if not running:
            final = "failed" if "failed" in states else "completed"
            context.runs.finish_pipeline(
                prun, _pipeline_state(final), "stage train failed" if final == "failed" else None
            )
        return [prun, *ids]

    def _advance(self, ids: list[str], position: int, state: str, hidden: int) -> None:
        runs, run_id = self.context.runs, ids[position]
        if state == "pending":
            return
        if state == "skipped":
            runs.transition(run_id, StageState.PENDING, StageState.SKIPPED, "upstream_failed")
            return
        runs.transition(run_id, StageState.PENDING, StageState.LAUNCHING, "planned", started_at=now_iso())
        runs.start_attempt(run_id, 1, None)
        runs.transition(run_id, StageState.LAUNCHING, StageState.RUNNING, "launched")
        write_log(
            self.context, run_id, [f"{STAGES[position]}: epoch {i} loss {1 / (i + 1):.4f}" for i in range(30)]
        )
        if position > 0:
            runs.add_lineage(
                [
                    LineageRow(
                        run_id,
                        "input",
                        _inputs[position],
                        "npy",
                        f"runs/{ids[position - 1]}/outputs",
                        f"{position:064x}",
                        4096 * position,
                        ids[position - 1],
                        None,
                    )
                ]
            )
        if STAGES[position] == "train":
            self.context.metrics.ingest(run_id, _points(1.0 + hidden / 512), 0)
        if state == "running":
            return
        if state == "failed":
            error = "RuntimeError: CUDA out of memory while allocating the attention buffer"
            runs.finish_attempt(run_id, 1, "failed", "stage_error", error, 1)
            runs.transition(
                run_id,
                StageState.RUNNING,
                StageState.FAILED,
                "exited",
                failure_kind="stage_error",
                error=error,
                exit_code=1,
            )
            return
        runs.transition(run_id, StageState.RUNNING, StageState.COLLECTING, "exited", exit_code=0)
        runs.add_lineage(
            [
                LineageRow(
                    run_id,
                    "output",
                    _outputs[position],
                    "npy",
                    f"runs/{run_id}/outputs",
                    f"{position + 7:064x}",
                    2048 * (position + 1),
                    None,
                    None,
                )
            ]
        )
        runs.finish_attempt(run_id, 1, "completed", None, None, 0)
        runs.transition(run_id, StageState.COLLECTING, StageState.COMPLETED, "collected")


_inputs = {1: "features", 2: "model"}
_outputs = {0: "features", 1: "model", 2: "report"}


def _pipeline_state(name: str):  # type: ignore[no-untyped-def]
    from goldfish.states import PipelineState

    return PipelineState(name)


def write_log(context: ServerContext, run_id: str, lines: list[str]) -> None:
    """Append ``lines`` to a stage run's stdout log, as the stage process does."""
    path = context.storage.local_path(RunPaths(run_id).stdout)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def build(root: Path) -> DashboardProject:
    """Workspaces, versions, a tag, thoughts and four runs in the initialized project at ``root``."""
    context = ServerContext.open(root)
    try:
        context.startup()
        for index, name in enumerate(WORKSPACES):
            context.workspaces.create(name, f"{name}: a small MLP on the demo data", None, None)
            context.workspaces.mount(name, "w1")
            _save(context, name, "w1", 64 * (index + 1), f"first {name} version")
            _save(context, name, "w1", 128 * (index + 1), f"{name} with a wider hidden layer")
            context.workspaces.hibernate("w1")
        context.versions.manage(
            "baseline",
            "tag",
            version="v2",
            tag="best-so-far",
            from_version=None,
            to_version=None,
            include_pruned=False,
            limit=10,
            offset=0,
        )
        context.thoughts.log("The wider layer overfits after epoch 40; try dropout next.", "baseline", None)
        writer = _Writer(context)
        done = writer.run("baseline", 2, ("completed", "completed", "completed"), 128)
        other = writer.run("wider-net", 2, ("completed", "completed", "completed"), 256)
        failed = writer.run("wider-net", 1, ("completed", "failed", "skipped"), 512)
        live = writer.run("baseline", 2, ("completed", "running", "pending"), 128)
        record = context.record_rows.of_pipeline_run(done[0])
        assert record is not None
        results = {
            "primary_metric": "val_loss",
            "value": 0.1234,
            "direction": "minimize",
            "ml_outcome": "success",
        }
        context.record_rows.finalize(record.id, results, None, None)
    finally:
        context.close()
    return DashboardProject(root, done[0], other[0], failed[0], live[0], live[2])
