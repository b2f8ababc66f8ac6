"""``promote_artifact``: a completed run's stored output registered as a source, keeping its lineage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goldfish.data.sources import SourceInfo, SourceService
from goldfish.db.runs import RunRepository, StageRunRow
from goldfish.errors import InvalidArgumentError
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage


class OutputPromoter:
    """Finds a run's stored output (state, lineage, storage URI) and registers it as a source.

    Args:
        stage_run: a stage run by id (``RunQueries.stage_run``: RUN_NOT_FOUND for an unknown id).
        runs: the run rows (the output's lineage row: content hash, size, producing run).
        storage: where run outputs are stored (builds the source's URI).
        sources: registers the source.
    """

    def __init__(
        self,
        stage_run: Callable[[str], StageRunRow],
        runs: RunRepository,
        storage: Storage,
        sources: SourceService,
    ):
        self._stage_run = stage_run
        self._runs = runs
        self._storage = storage
        self._sources = sources

    def promote(
        self, run_id: str, output_name: str, source_name: str, metadata: dict[str, Any] | None
    ) -> SourceInfo:
        """Register output ``output_name`` of completed stage run ``run_id`` as source ``source_name``.

        A cache hit's output is the one its original run stored, so the URI points there.

        Raises:
            RunNotFoundError: no such stage run.
            InvalidArgumentError: the run did not complete or has no stored output of that name.
            SourceExistsError: ``source_name`` is taken.
        """
        row = self._stage_run(run_id)
        outputs = {item.signal: item for item in self._runs.lineage(row.id, "output")}
        if row.state != "completed" or output_name not in outputs:
            raise InvalidArgumentError(
                f"Run {row.id} has no stored output '{output_name}'.",
                details={"run_id": row.id, "state": row.state, "outputs": sorted(outputs)},
            )
        item = outputs[output_name]
        uri = self._storage.uri(RunPaths(item.producer_run_id or row.id).output(output_name))
        return self._sources.promote(
            source_name, uri, item.content_hash, item.size_bytes, row.id, output_name, metadata
        )
