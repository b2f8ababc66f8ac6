"""Results for ``finalize_run`` made from a run's results spec and one value.

What ``goldfish finalize RUN --value V`` and ``goldfish run --finalize auto`` record: the people's
and the CI's way to finalize without writing the results by hand.
"""

from __future__ import annotations

from typing import Any

from goldfish.errors import InvalidArgumentError
from goldfish.memory.record_models import FinalizeInfo, suggested_outcome
from goldfish.memory.records import RecordService

UNSPECIFIED_SPLIT = "unspecified"
NOT_COMPLETED_NOTE = "The run did not complete; recorded automatically by `goldfish run --finalize auto`."


def results_from(
    spec: dict[str, Any], value: float | None, outcome: str | None, notes: str = ""
) -> dict[str, Any]:
    """``finalize_run``'s results from a run's results spec and a value.

    The outcome, unless given, is what the spec's goal_value/min_value make of the value
    (``unknown`` without a value or thresholds); the split defaults to ``unspecified``.

    Raises:
        InvalidArgumentError: an outcome other than ``unknown`` without a value.
    """
    chosen = outcome or suggested_outcome(value, spec) or "unknown"
    if value is None and chosen != "unknown":
        raise InvalidArgumentError(
            "The run logged no value of its primary metric, so only --outcome unknown can be recorded.",
            details={"primary_metric": spec.get("primary_metric")},
            remedy="Pass --value V with the value you measured, or --outcome unknown.",
        )
    return {
        "primary_metric": spec.get("primary_metric") or "",
        "direction": spec.get("direction") or "maximize",
        "value": value,
        "dataset_split": spec.get("dataset_split") or UNSPECIFIED_SPLIT,
        "ml_outcome": chosen,
        "notes": notes,
    }


def finalize_auto(records: RecordService, pipeline_run_id: str, *, succeeded: bool) -> FinalizeInfo:
    """``run --finalize auto``: record an ended run's outcome from its spec and last logged value.

    A run that failed (or was canceled or timed out) is recorded as ``unknown`` with a note saying
    so, so that an unattended CI loop is not blocked by the finalization gate on its next run.
    """
    row = records.resolve(pipeline_run_id)
    spec = row.results_spec or {}
    if succeeded:
        results = results_from(spec, records.suggestion(row).value, None)
    else:
        results = results_from(spec, None, "unknown", NOT_COMPLETED_NOTE)
    return records.finalize(pipeline_run_id, results, None)
