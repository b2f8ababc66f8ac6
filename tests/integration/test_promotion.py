"""promote_artifact's service (``OutputPromoter``): a completed run's output becomes a source."""

from __future__ import annotations

import pytest

from goldfish.context import ServerContext
from goldfish.errors import InvalidArgumentError, RunNotFoundError
from goldfish.runs.models import RunSubmission, StageRunInfo
from tests.integration.test_wait_for_change import submitted


def prep_of(context: ServerContext, configs: dict[str, dict[str, object]]) -> StageRunInfo:
    """The prep stage of a two-stage run, after the run ended."""
    *_, done = context.run_watch.follow(submitted(context, configs), 60.0, 1.0)
    assert isinstance(done, RunSubmission) and done.finished
    return next(s for s in done.stages if isinstance(s, StageRunInfo) and s.stage == "prep")


def test_promote_of_a_completed_output_registers_it_with_the_runs_hash_and_lineage(
    context: ServerContext,
) -> None:
    prep = prep_of(context, {})
    produced = {row.signal: row for row in context.runs.lineage(prep.stage_run_id, "output")}["features"]

    source = context.promotions.promote(prep.stage_run_id, "features", "features_v1", {"rows": 3})

    assert (source.name, source.produced_by_run, source.produced_signal) == (
        "features_v1",
        prep.stage_run_id,
        "features",
    )
    assert (source.content_hash, source.size_bytes) == (produced.content_hash, produced.size_bytes)
    assert source.uri.endswith(f"{prep.stage_run_id}/outputs/features")
    assert context.sources.get("features_v1").metadata == {"rows": 3}


def test_promote_of_an_output_the_run_does_not_have_lists_the_ones_it_has(context: ServerContext) -> None:
    prep = prep_of(context, {})

    with pytest.raises(InvalidArgumentError) as raised:
        context.promotions.promote(prep.stage_run_id, "nothing", "x", None)

    assert raised.value.details == {
        "run_id": prep.stage_run_id,
        "state": "completed",
        "outputs": ["features"],
    }
    assert context.sources.names() == []


def test_promote_of_a_failed_run_is_refused(context: ServerContext) -> None:
    prep = prep_of(context, {"prep": {"exit_code": 3}})

    with pytest.raises(InvalidArgumentError, match="has no stored output 'features'"):
        context.promotions.promote(prep.stage_run_id, "features", "x", None)


def test_promote_of_an_unknown_run_says_so(context: ServerContext) -> None:
    with pytest.raises(RunNotFoundError):
        context.promotions.promote("stage-000000000000", "features", "x", None)
