"""Waiting for a run (`goldfish run --wait`, `run(wait=true)`) notices another process's commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from goldfish.context import ServerContext
from goldfish.db.database import Database
from goldfish.runs.models import RunSubmission, StageRunInfo
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import RESULTS_SPEC, TWO_STAGES, write_pipeline


def test_wait_for_change_returns_a_new_version_once_another_connection_commits(project_root: Path) -> None:
    context = ServerContext.open(project_root)
    other = Database(context.paths.database)
    try:
        seen = context.db.data_version()
        with other.transaction() as conn:
            conn.execute("INSERT INTO thoughts (thought, at) VALUES ('noted', '2026-01-01T00:00:00Z')")

        changed = context.db.wait_for_change(seen, 60.0)
        unchanged = context.db.wait_for_change(changed, 0.02)
    finally:
        other.close()
        context.close()

    assert changed != seen
    assert unchanged == changed


def submitted(context: ServerContext, configs: dict[str, dict[str, Any]]) -> RunSubmission:
    """A two-stage run of a fresh workspace in w1, as the run tool submits it."""
    context.workspaces.create("alpha", "learn something")
    context.workspaces.mount("alpha", "w1")
    write_pipeline(context.paths.slot("w1"), TWO_STAGES, configs)
    service = context.run_service
    request = service.build_request(
        "w1", None, None, None, None, LONG_REASON, RESULTS_SPEC, None, False, True, None
    )
    return service.submit(request)


def states(picture: RunSubmission) -> list[str]:
    return [stage.status for stage in picture.stages if isinstance(stage, StageRunInfo)]


def test_follow_when_the_run_ends_yields_pictures_until_the_finished_one(context: ServerContext) -> None:
    submission = submitted(context, {})

    pictures = list(context.run_watch.follow(submission, 60.0, 1.0))

    assert pictures[-1].finished and states(pictures[-1]) == ["completed", "completed"]
    assert not any(picture.finished for picture in pictures[:-1])


def test_follow_when_time_runs_out_stops_with_the_run_still_running(context: ServerContext) -> None:
    submission = submitted(context, {"prep": {"sleep": 60, "obey_stop": True}})
    try:
        pictures = list(context.run_watch.follow(submission, 0.2, 0.05))
    finally:
        context.run_queries.cancel(str(submission.pipeline_run_id))

    assert pictures and not pictures[-1].finished
    assert pictures[-1].pipeline_run_id == submission.pipeline_run_id


def test_follow_of_a_dry_run_yields_it_as_it_is(context: ServerContext) -> None:
    context.workspaces.create("alpha", "learn something")
    context.workspaces.mount("alpha", "w1")
    write_pipeline(context.paths.slot("w1"), TWO_STAGES)
    service = context.run_service
    dry = service.submit(
        service.build_request("w1", None, None, None, None, LONG_REASON, None, None, True, True, None)
    )

    assert list(context.run_watch.follow(dry, 60.0, 1.0)) == [dry]
