"""What stage validation found for a run: the pre-run review, statistics and rule findings per output.

One read path for ``get_svs_findings``, ``inspect_run(include=["svs"])`` and any other view (the
web dashboard), so they never disagree.
"""

from __future__ import annotations

from typing import Any

from goldfish.db.runs import RunRepository, StageRunRow
from goldfish.db.svs import SvsRepository
from goldfish.errors import RunNotFoundError

NOT_REVIEWED = {"reviewed_by": "none", "why": "no pre-run review was recorded for this run (it predates SVS)"}


class SvsService:
    """Reads SVS records of runs."""

    def __init__(self, runs: RunRepository, store: SvsRepository):
        self._runs = runs
        self._store = store

    def review(self, pipeline_run_id: str) -> dict[str, Any]:
        """The pre-run review of a pipeline run, or a record saying none was made."""
        row = self._store.review(pipeline_run_id)
        return row.as_json() if row is not None else dict(NOT_REVIEWED)

    def stage_findings(self, row: StageRunRow) -> dict[str, Any]:
        """One stage run: its review, outcome, and per output the statistics and rule findings."""
        findings = self._store.findings(row.id)
        outputs: dict[str, dict[str, Any]] = {}
        for item in self._runs.lineage(row.id, "output"):
            outputs[item.signal] = {"type": item.type, "stats": item.stats, "findings": []}
        for finding in findings:
            entry = outputs.setdefault(finding.signal, {"type": None, "stats": None, "findings": []})
            entry["findings"].append(finding.as_json())
        contract = row.error if row.failure_kind == "contract_violation" else None
        return {
            "stage_run_id": row.id,
            "stage": row.stage,
            "state": row.state,
            "failure_kind": row.failure_kind,
            "review": self.review(row.pipeline_run_id),
            "contract_violation": contract,
            "outputs": outputs,
            "summary": {
                "block": sum(1 for f in findings if f.mode == "block"),
                "warn": sum(1 for f in findings if f.mode == "warn"),
            },
        }

    def findings(self, run_id: str) -> dict[str, Any]:
        """Findings of a stage run (``stage-...``) or of every stage of a pipeline run (``prun-...``).

        Raises:
            RunNotFoundError: when no run has that id.
        """
        run_id = str(run_id)[:100]
        if run_id.startswith("prun-"):
            parent = self._runs.pipeline_run(run_id)
            if parent is None:
                raise RunNotFoundError(f"No pipeline run {run_id!r}.", details={"run_id": run_id})
            stages = [self.stage_findings(row) for row in self._runs.stages_of(run_id)]
            for stage in stages:
                stage.pop("review")
            return {"pipeline_run_id": run_id, "review": self.review(run_id), "stages": stages}
        row = self._runs.stage_run(run_id)
        if row is None:
            raise RunNotFoundError(f"No stage run {run_id!r}.", details={"run_id": run_id})
        return self.stage_findings(row)
