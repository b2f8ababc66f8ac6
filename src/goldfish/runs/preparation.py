"""Getting a planned stage ready to launch: its folder, inputs, config and signal files, the RunSpec."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from goldfish.backends.gpus import wait_ready
from goldfish.backends.spec import RunSpec
from goldfish.db.runs import StageRunRow
from goldfish.errors import InputUnreachableError
from goldfish.fileops import link_tree
from goldfish.pipelines.models import StageDef
from goldfish.runs.deps import ExecutorDeps
from goldfish.runs.machine import StageMachine
from goldfish.runs.planner import ResolvedInput
from goldfish.runs.stage_secrets import StageSecrets
from goldfish.states import StageState
from goldfish.svs import outputs as svs_outputs

log = logging.getLogger("goldfish.runs")
RUN_FOLDERS = ("outputs", "logs", "control", "work")


class StagePreparer:
    """Stages inputs read-only, writes config and signal files, lets the backend build its environment."""

    def __init__(self, deps: ExecutorDeps, secrets: StageSecrets, machine: StageMachine):
        self.deps = deps
        self._secrets = secrets
        self._machine = machine

    def prepare(
        self, run: StageRunRow, stage: StageDef, inputs: list[ResolvedInput], run_dir: Path
    ) -> RunSpec:
        """The launchable spec of ``run``; a backend that builds first moves it to building."""
        backend = self.deps.backends.get(run.backend)
        staged = self._stage_inputs(inputs, run_dir / "inputs", on_vm=backend.capabilities.isolation == "vm")
        for folder in RUN_FOLDERS:
            (run_dir / folder).mkdir(parents=True, exist_ok=True)
        config_file = run_dir / "config.json"
        config_file.write_text(json.dumps(run.config, indent=2), encoding="utf-8")
        signals_file = run_dir / "signals.json"
        signals = {
            "inputs": {n: s.model_dump(by_alias=True, exclude_none=True) for n, s in stage.inputs.items()},
            "outputs": {n: s.model_dump(by_alias=True, exclude_none=True) for n, s in stage.outputs.items()},
            "svs": svs_outputs.signals_settings(self.deps.svs),
        }
        signals_file.write_text(json.dumps(signals, indent=2), encoding="utf-8")
        runtime = self.deps.runtime
        spec = RunSpec(
            stage_run_id=run.id,
            workspace=run.workspace,
            stage=run.stage,
            module=run.module,
            code_dir=run_dir / "code",
            run_dir=run_dir,
            inputs=staged,
            outputs_dir=run_dir / "outputs",
            logs_dir=run_dir / "logs",
            config_file=config_file,
            signals_file=signals_file,
            timeout_seconds=run.timeout_seconds,
            python=sys.executable,
            profile=run.profile,
            input_uris={item.name: item.uri for item in inputs},
            outputs=tuple(stage.outputs),
            env=dict(run.env),
            secrets=self._secrets.resolve(run),
            gpu_ids=tuple(run.gpu_ids or ()),
            telemetry_interval=runtime.telemetry_interval,
            telemetry_max_points=runtime.telemetry_max_points,
        )

        def on_build(detail: str) -> None:
            if StageState(run.state) == StageState.PENDING:
                self._machine.move(run, StageState.BUILDING, "build", detail)

        prepared = backend.prepare(spec, on_build)
        if prepared.gpu_ids:
            seen = wait_ready(list(prepared.gpu_ids), runtime.gpu_min_free_mb, runtime.gpu_timeout_seconds)
            log.info("GPUs of %s ready: %s", run.id, seen)
        return prepared

    def recorded_inputs(self, run: StageRunRow) -> list[ResolvedInput]:
        """The inputs the first attempt resolved, from the run's lineage (a retry reads the same data)."""
        inputs = []
        for row in self.deps.runs.lineage(run.id, "input"):
            key = self.deps.storage.key_of(row.uri)
            local = self.deps.storage.local_path(key) if key is not None else None
            if local is None and key is None and not row.uri.startswith("gs://"):
                local = self.deps.sources.local_path(row.uri)  # a registered local source
            inputs.append(
                ResolvedInput(
                    row.signal,
                    row.type,
                    row.uri,
                    row.content_hash,
                    row.size_bytes,
                    row.producer_run_id,
                    row.source_name,
                    local,
                )
            )
        return inputs

    def _stage_inputs(self, inputs: list[ResolvedInput], inputs_dir: Path, *, on_vm: bool) -> dict[str, Path]:
        inputs_dir.mkdir(parents=True, exist_ok=True)
        staged: dict[str, Path] = {}
        for item in inputs:
            if on_vm:  # the VM fetches its inputs itself; local ones are uploaded by the backend
                if item.local_path is not None:
                    staged[item.name] = item.local_path
                continue
            staged[item.name] = self._stage_input(item, inputs_dir / item.name)
        return staged

    def _stage_input(self, item: ResolvedInput, target: Path) -> Path:
        """Expose one input under ``target``: hardlinks of a local file or folder, else a download."""
        if item.local_path is not None:
            link_tree(item.local_path, target)
            return target
        key = self.deps.storage.key_of(item.uri)
        if key is None:
            raise InputUnreachableError(
                f"Input '{item.name}' ({item.uri}) is not reachable from this machine.",
                details={"input": item.name, "uri": item.uri},
            )
        self.deps.storage.get_dir(key, target)
        return target
