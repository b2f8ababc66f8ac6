"""What the headless run commands need besides argument parsing.

``goldfish run``, ``goldfish runs``, ``goldfish logs`` and the active runs of ``goldfish status``
go through the same services as the MCP tools (``RunService``, ``RunQueries``; a folder given
to ``goldfish run`` is imported by ``FolderImporter``, the wait is ``RunWatcher``'s); this module
only adds what a terminal or a CI job needs around them:

- finding the results spec (``--results-spec FILE`` or the workspace's ``results_spec.yaml``);
- progress while waiting (a live display on a terminal, one line per state change otherwise);
- exit codes, summaries, log following and run tables.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import yaml

from goldfish.context import ServerContext
from goldfish.errors import InvalidArgumentError, InvalidPathError
from goldfish.pipelines.validator import FileReader
from goldfish.runs.models import RunSubmission, StageRunInfo
from goldfish.states import ACTIVE, StageState
from goldfish.validation import page
from goldfish.yamlfile import load_yaml

RESULTS_SPEC_FILES = ("results_spec.yaml", "results_spec.yml", "results_spec.json")
POLL_SECONDS = 0.25

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMED_OUT = 3

LogStream = Literal["stdout", "stderr", "both"]


# -- the results spec ---------------------------------------------------------------------------
def results_spec(
    context: ServerContext, workspace: str | None, spec_file: str | None, required: bool
) -> dict[str, Any] | None:
    """``--results-spec FILE`` (JSON or YAML), else the workspace's ``results_spec.yaml``/``.json``.

    Raises:
        InvalidArgumentError: when ``required`` and neither exists, or the file is not a mapping.
    """
    if spec_file is not None:
        path = Path(spec_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidPathError(
                f"Cannot read --results-spec {spec_file}: {exc.strerror or exc}.",
                details={"path": spec_file},
                remedy="Pass a JSON or YAML file such as {primary_metric: val_acc, direction: maximize}.",
            ) from None
        return _parse_spec(text, path.name)
    files = (
        context.core.files_of(context.core.workspace_or_slot(workspace)) if workspace is not None else None
    )
    return spec_in(files, required)


def spec_in(files: FileReader | None, required: bool) -> dict[str, Any] | None:
    """The results spec file among ``files`` (results_spec.yaml, .yml or .json).

    Raises:
        InvalidArgumentError: when ``required`` and there is none, or the file is not a mapping.
    """
    for name in RESULTS_SPEC_FILES:
        found = files.read_text(name) if files is not None else None
        if found is not None:
            return _parse_spec(found, name)
    if not required:
        return None
    raise InvalidArgumentError(
        "A run needs a results spec (what success means), and none was given or found.",
        details={"field": "results_spec", "looked_for": list(RESULTS_SPEC_FILES)},
        remedy="Pass --results-spec FILE (JSON or YAML with primary_metric and direction), "
        "or add results_spec.yaml to the workspace.",
    )


def _parse_spec(text: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if name.endswith(".json") else load_yaml(text, name).data
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if name.endswith(".json") else "YAML"
        raise InvalidArgumentError(
            f"{name} is not valid {kind}: {str(exc)[:300]}", details={"field": "results_spec", "file": name}
        ) from None
    if not isinstance(data, dict):
        raise InvalidArgumentError(
            f"{name} must hold a mapping such as {{primary_metric: val_acc, direction: maximize}}.",
            details={"field": "results_spec", "file": name},
        )
    return data


def stage_list(value: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None -> every stage."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise InvalidArgumentError("--stages needs stage names, e.g. --stages train,evaluate.")
    return names


# -- waiting with progress ----------------------------------------------------------------------
class Progress(Protocol):
    """Shows how a pipeline run advances."""

    def update(self, submission: RunSubmission) -> None:
        """Show the current picture."""

    def close(self) -> None:
        """Finish the display."""


class PlainProgress:
    """One line whenever a stage changes state (for logs and CI)."""

    def __init__(self, out: TextIO):
        self._out = out
        self._seen: dict[str, str] = {}

    def update(self, submission: RunSubmission) -> None:
        """Print the stages whose state changed since the last call."""
        for stage in stage_infos(submission):
            if self._seen.get(stage.stage_run_id) != stage.status:
                self._seen[stage.stage_run_id] = stage.status
                print(stage_line(stage), file=self._out, flush=True)

    def close(self) -> None:
        """Nothing to finish."""


class LiveProgress:
    """One line per stage, rewritten in place (for a terminal)."""

    def __init__(self, out: TextIO):
        self._out = out
        self._drawn = 0

    def update(self, submission: RunSubmission) -> None:
        """Redraw every stage's line."""
        width = max(shutil.get_terminal_size().columns - 1, 20)
        lines = [stage_line(stage)[:width] for stage in stage_infos(submission)]
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}F")  # back to the first line drawn
        self._out.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self._out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        """Leave the last picture on screen."""
        self._out.flush()


def make_progress(out: TextIO) -> Progress:
    """A live display on a terminal, plain lines otherwise."""
    return LiveProgress(out) if out.isatty() else PlainProgress(out)


def wait_for(
    context: ServerContext, submission: RunSubmission, timeout: float, progress: Progress
) -> RunSubmission:
    """Follow the pipeline run (``RunWatcher.follow``) until it ends or ``timeout`` seconds pass."""
    current = submission
    for current in context.run_watch.follow(submission, timeout, POLL_SECONDS):
        progress.update(current)
    progress.close()
    return current


def exit_code(submission: RunSubmission) -> int:
    """0 when every stage completed, 1 when one did not, 3 when some are still running."""
    if not submission.finished:
        return EXIT_TIMED_OUT
    stages = stage_infos(submission)
    return EXIT_OK if all(stage.status == StageState.COMPLETED for stage in stages) else EXIT_FAILED


# -- text output --------------------------------------------------------------------------------
def stage_infos(submission: RunSubmission) -> list[StageRunInfo]:
    """The stage runs of a (non-dry) submission."""
    return [stage for stage in submission.stages if isinstance(stage, StageRunInfo)]


def stage_line(stage: StageRunInfo) -> str:
    """``name  status  elapsed  id  note`` for one stage run."""
    elapsed = f"{stage.elapsed_seconds:.1f}s" if stage.elapsed_seconds is not None else "-"
    if stage.cache_hit:
        note = f"cache hit of {stage.cached_from}"
    elif stage.error:
        note = " ".join(stage.error.split())[:200]
    elif StageState(stage.status) in ACTIVE:
        note = stage.heartbeat or ""
    else:
        note = ""
    return f"{stage.stage:<20} {stage.status:<10} {elapsed:>8}  {stage.stage_run_id}  {note}".rstrip()


def print_summary(submission: RunSubmission, out: TextIO) -> None:
    """What ran, how it ended, and where to look next."""
    if submission.dry_run:
        print(f"Dry run of workspace '{submission.workspace}': the plan is valid.", file=out)
        for planned in submission.stages:
            if isinstance(planned, dict):
                print(f"  {planned['stage']:<20} {planned['backend']:<8} {planned['module']}", file=out)
        return
    stages = stage_infos(submission)
    done = sum(1 for stage in stages if stage.status == StageState.COMPLETED)
    saved = "new version" if submission.version_created else "unchanged version"
    print(
        f"{submission.pipeline_run_id}: workspace '{submission.workspace}' {submission.version} ({saved}), "
        f"{submission.state}; {done} of {len(stages)} stages completed.",
        file=out,
    )
    for stage in stages:
        print(f"  {stage_line(stage)}", file=out)
    for stage in stages:
        if stage.status in (StageState.FAILED, StageState.TIMED_OUT):
            print(f"See: goldfish logs {stage.stage_run_id} --stream stderr", file=out)
    if not submission.finished:
        print(f"Still running; follow with: goldfish logs {submission.pipeline_run_id} --follow", file=out)


def runs_table(runs: list[StageRunInfo]) -> list[str]:
    """Stage runs as aligned text columns."""
    header = ("RUN", "WORKSPACE", "VERSION", "STAGE", "STATUS", "AGE", "ELAPSED")
    rows = [header] + [
        (
            run.stage_run_id,
            run.workspace,
            run.version,
            run.stage,
            run.status + (" (cached)" if run.cache_hit else ""),
            run.age or "-",
            f"{run.elapsed_seconds:.1f}s" if run.elapsed_seconds is not None else "-",
        )
        for run in runs
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


# -- listing and logs ---------------------------------------------------------------------------
def list_stage_runs(
    context: ServerContext, filters: dict[str, str | None], limit: int
) -> tuple[list[StageRunInfo], int]:
    """Stage runs newest first (workspace may be a slot), as the list_runs tool gives them."""
    limit, _ = page(limit, 0)
    chosen = {key: value for key, value in filters.items() if value is not None}
    if "workspace" in chosen:
        chosen["workspace"] = context.core.workspace_or_slot(chosen["workspace"]).name
    return context.run_queries.list_runs(chosen, limit, 0)


def print_logs(
    context: ServerContext, run_id: str, stream: LogStream, tail: int, follow: bool, out: TextIO
) -> None:
    """A stage run's log (every stage's, in order, for a pipeline run id); ``follow`` until it ends."""
    queries = context.run_queries
    if run_id.startswith("prun-"):
        stage_ids = [s.stage_run_id for s in queries.pipeline_info(queries.pipeline_run(run_id)).stages]
    else:
        stage_ids = [queries.stage_run(run_id).id]
    for stage_id in stage_ids:
        if len(stage_ids) > 1:
            print(f"== {queries.stage_run(stage_id).stage} ({stage_id}) ==", file=out, flush=True)
        chunk = queries.logs(stage_id, tail, None, stream)
        _write_lines(chunk.lines, out)
        while follow and not chunk.complete:
            time.sleep(POLL_SECONDS)
            chunk = queries.logs(stage_id, tail, chunk.cursor, stream)
            _write_lines(chunk.lines, out)


def _write_lines(lines: list[str], out: TextIO) -> None:
    if lines:
        out.write("".join(f"{line}\n" for line in lines))
        out.flush()
