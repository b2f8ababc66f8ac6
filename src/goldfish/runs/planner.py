"""Planning a stage: where each input comes from (with its content hash) and the cache key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goldfish.data.sources import SourceService
from goldfish.db.runs import PipelineRunRow, RunRepository, StageRunRow
from goldfish.errors import GoldfishError, suggestion_suffix
from goldfish.hashing import hash_json
from goldfish.pipelines.models import InputSignal, StageDef
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage


class InputUnavailableError(GoldfishError):
    """An input has no producer run or source to read from."""

    code = "INPUT_UNAVAILABLE"
    default_remedy = "Run the producing stage first, or name a run or source for it in inputs_override."


@dataclass(frozen=True)
class ResolvedInput:
    """Where one input signal comes from."""

    name: str
    type: str
    uri: str
    content_hash: str | None
    size_bytes: int | None
    producer_run_id: str | None
    source_name: str | None
    local_path: Path | None

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for tool results."""
        return {
            "name": self.name,
            "type": self.type,
            "uri": self.uri,
            "content_hash": self.content_hash,
            "producer_run_id": self.producer_run_id,
            "source": self.source_name,
        }


class InputResolver:
    """Resolves a stage's inputs: overrides, then this pipeline run, then the latest successful producer."""

    def __init__(self, runs: RunRepository, sources: SourceService, storage: Storage):
        self._runs = runs
        self._sources = sources
        self._storage = storage

    def resolve(
        self, stage: StageDef, pipeline_run: PipelineRunRow, siblings: dict[str, StageRunRow]
    ) -> list[ResolvedInput]:
        """Every input of ``stage``; ``siblings`` are the stage runs of the same pipeline run by stage."""
        resolved = []
        for name, signal in stage.inputs.items():
            override = (pipeline_run.inputs_override or {}).get(name)
            if override is not None:
                resolved.append(self._from_reference(name, signal, override))
            elif signal.type == "dataset":
                resolved.append(self._from_source(name, signal.type, str(signal.dataset)))
            else:
                resolved.append(self._from_producer(name, signal, pipeline_run, siblings))
        return resolved

    def _from_reference(self, name: str, signal: InputSignal, reference: str) -> ResolvedInput:
        if reference.startswith("stage-"):
            producer = self._runs.stage_run(reference)
            if producer is None or producer.state != "completed":
                raise InputUnavailableError(
                    f"inputs_override for '{name}' names run {reference}, which has not completed.",
                    details={"input": name, "run_id": reference},
                )
            return self._from_run(name, signal.type, producer, signal.signal or name)
        return self._from_source(name, signal.type, reference)

    def _from_source(self, name: str, kind: str, source_name: str) -> ResolvedInput:
        source = self._sources.get(source_name)
        local = self._sources.verify_unchanged(source)
        return ResolvedInput(
            name,
            kind,
            source.uri,
            source.content_hash,
            source.size_bytes,
            source.produced_by_run,
            source.name,
            local,
        )

    def _from_producer(
        self, name: str, signal: InputSignal, pipeline_run: PipelineRunRow, siblings: dict[str, StageRunRow]
    ) -> ResolvedInput:
        producer_stage = str(signal.from_stage)
        producer = siblings.get(producer_stage)
        if producer is None and pipeline_run.resumed_from:
            earlier = self._runs.stages_of(pipeline_run.resumed_from)
            producer = next(
                (r for r in earlier if r.stage == producer_stage and r.state == "completed"), None
            )
        if producer is None:
            producer = self._runs.latest_successful(pipeline_run.workspace, producer_stage)
        if producer is None or producer.state != "completed":
            raise InputUnavailableError(
                f"Input '{name}' needs stage '{producer_stage}', which has no successful run in workspace "
                f"'{pipeline_run.workspace}'.",
                details={"input": name, "from_stage": producer_stage},
            )
        return self._from_run(name, signal.type, producer, signal.signal or name)

    def _from_run(self, name: str, kind: str, producer: StageRunRow, signal: str) -> ResolvedInput:
        outputs = {row.signal: row for row in self._runs.lineage(producer.id, "output")}
        row = outputs.get(signal)
        if row is None:
            raise InputUnavailableError(
                f"Run {producer.id} has no output '{signal}'{suggestion_suffix(signal, outputs)}.",
                details={"input": name, "run_id": producer.id, "outputs": sorted(outputs)},
            )
        origin = row.producer_run_id or producer.id  # a cache hit points at the run that made it
        local = self._storage.local_path(RunPaths(origin).output(signal))
        return ResolvedInput(name, kind, row.uri, row.content_hash, row.size_bytes, producer.id, None, local)


def cache_key(
    *,
    code: dict[str, Any],
    module: str,
    config: dict[str, Any],
    inputs: list[ResolvedInput],
    environment: str,
    profile: str | None,
    backend: str,
    env: dict[str, str] | None = None,
    secret_names: list[str] | None = None,
) -> str:
    """Hash of everything a stage's outputs depend on (``code``: :meth:`CodeScope.key_material`).

    Secret *names* join it, never their values; env and secret names join only when a stage has
    them, so older keys stay valid.
    """
    parts: dict[str, Any] = {
        "code": code,
        "module": module,
        "config": config,
        "inputs": {item.name: item.content_hash for item in inputs},
        "environment": environment,
        "profile": profile,
        "backend": backend,
    }
    if env:
        parts["env"] = env
    if secret_names:
        parts["secrets"] = sorted(secret_names)
    return hash_json(parts)
