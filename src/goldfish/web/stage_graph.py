"""Which stages of a run read from which: the edges of the run page's DAG.

From the run's version's pipeline.yaml (read once per version: a saved version never changes),
else from the lineage the run recorded.
"""

from __future__ import annotations

import threading

from goldfish.context import ServerContext
from goldfish.db.runs import PipelineRunRow, StageRunRow
from goldfish.errors import GoldfishError
from goldfish.pipelines.graph import dependencies
from goldfish.pipelines.validator import load_pipeline
from goldfish.web.models import StageNode, stage_node
from goldfish.workspaces.files import VersionFiles


class StageGraphs:
    """The stage DAG of pipeline runs, definitions cached per version.

    Args:
        context: The project's services.
    """

    def __init__(self, context: ServerContext):
        self._context = context
        # Stage dependencies per (workspace, version, pipeline): a saved version never changes.
        self._graphs: dict[tuple[str, int, str | None], dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    def nodes(self, pipeline: PipelineRunRow, stages: list[StageRunRow]) -> list[StageNode]:
        """The stage runs of ``pipeline`` as DAG nodes, each with the stages it reads from."""
        deps = self._dependencies(pipeline, stages)
        return [stage_node(stage, deps.get(stage.stage, [])) for stage in stages]

    def _dependencies(self, pipeline: PipelineRunRow, stages: list[StageRunRow]) -> dict[str, list[str]]:
        """Stage → stages it reads from: from the version's pipeline.yaml, else from recorded lineage."""
        key = (pipeline.workspace, pipeline.version_num, pipeline.pipeline)
        with self._lock:
            cached = self._graphs.get(key)
        if cached is None:
            cached = self._definition_graph(pipeline)
            with self._lock:
                self._graphs[key] = cached
        if cached:
            return cached
        by_id = {stage.id: stage.stage for stage in stages}
        found: dict[str, list[str]] = {}
        for stage in stages:
            for edge in self._context.runs.lineage(stage.id, "input"):
                producer = by_id.get(edge.producer_run_id or "")
                if producer and producer not in found.setdefault(stage.stage, []):
                    found[stage.stage].append(producer)
        return found

    def _definition_graph(self, pipeline: PipelineRunRow) -> dict[str, list[str]]:
        context = self._context
        version = context.workspace_rows.version(pipeline.workspace_id, pipeline.version_num)
        if version is None:
            return {}
        try:
            files = VersionFiles(context.repo, version.commit_sha)
            definition = load_pipeline(files, pipeline.pipeline, None)
        except GoldfishError:
            return {}
        return dependencies(definition)
