"""What the headless run commands need besides argument parsing.

``goldfish run``, ``goldfish runs``, ``goldfish logs`` and the active runs of ``goldfish status``
go through the same services as the MCP tools (``RunService``, ``RunQueries``); this module only
adds what a terminal or a CI job needs around them:

- importing a plain folder as a workspace (``goldfish run ./my-pipeline``);
- finding the results spec (``--results-spec FILE`` or the workspace's ``results_spec.yaml``);
- waiting with progress (a live display on a terminal, one line per state change otherwise);
- exit codes, summaries, log following and run tables.

Imported folders: ``.goldfish/imports.json`` maps each imported folder's absolute path to its
workspace (``{"/abs/path/to/folder": "folder"}``); the workspace's goal names the folder too, for
people reading ``status``. The first import creates a workspace named after the folder
(``folder``, or ``folder-2`` when taken); later imports of the same path reuse it. Each import
mounts the workspace in a free slot, mirrors the folder's files into it with delete semantics
(``.git``, ``__pycache__`` and ``.goldfish`` are left out; unchanged files are not touched), lets
the run save that as the next version, and hibernates the slot again, so imports hold no slot
between runs. If the workspace is already mounted (someone mounted it by hand) its slot is used
and left mounted, and the folder's files replace what the slot held.
"""

from __future__ import annotations

import filecmp
import hashlib
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import yaml

from goldfish.context import ServerContext
from goldfish.errors import InvalidArgumentError, InvalidPathError, SlotOccupiedError
from goldfish.fileops import write_text_atomic
from goldfish.locks import file_lock
from goldfish.pipelines.validator import FileReader
from goldfish.runs.models import RunSubmission, StageRunInfo
from goldfish.states import ACTIVE, StageState
from goldfish.validation import page
from goldfish.yamlfile import load_yaml

RESULTS_SPEC_FILES = ("results_spec.yaml", "results_spec.yml", "results_spec.json")
SKIPPED_NAMES = frozenset({".git", "__pycache__", ".goldfish"})
IMPORTS_FILE = "imports.json"
IMPORT_WAIT_SECONDS = 300.0
POLL_SECONDS = 0.25
DRIVER_CHECK_SECONDS = 30.0
FINISH_GRACE_SECONDS = 5.0
MAX_ACTIVE_SHOWN = 50

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMED_OUT = 3

LogStream = Literal["stdout", "stderr", "both"]


# -- which workspace ----------------------------------------------------------------------------
@contextmanager
def workspace_to_run(context: ServerContext, ref: str) -> Iterator[str]:
    """The workspace (or slot) to run, for the duration of the ``with`` block.

    A workspace name or slot is yielded as given, and wins over a folder of the same name (write
    ``./name`` for the folder). A slot folder given as a path is that slot. Any other folder is
    imported (see the module docstring): its workspace is mounted and holds the folder's files
    while the block runs, and the slot is hibernated again afterwards if this call mounted it.
    Anything else is yielded unchanged, so the run service reports an unknown workspace with a
    did-you-mean.
    """
    folder = folder_to_import(context, ref)
    if folder is None:
        yield _as_slot(context, ref)
        return
    digest = hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
    # One import of a folder at a time: a second one waits until the first has submitted its run.
    with file_lock(context.paths.locks / f"import-{digest}.lock", f"Importing {folder}", IMPORT_WAIT_SECONDS):
        name = _workspace_of(context, folder)
        slot, mounted_here = _mount_somewhere(context, name)
        try:
            with context.core.locked(name):
                mirror_folder(folder, context.core.slot_path(slot))
            yield name
        finally:
            if mounted_here:
                context.workspaces.hibernate(slot)


def folder_to_import(context: ServerContext, ref: str) -> Path | None:
    """The folder :func:`workspace_to_run` imports for ``ref``; None for a workspace or slot.

    Raises:
        InvalidPathError: the folder holds the project or lies inside its state or slots.
        InvalidArgumentError: the folder has no pipeline.
    """
    folder = _folder_to_import(context, _as_slot(context, ref))
    if folder is not None:
        _check_importable(context, folder)
    return folder


def _named(context: ServerContext, ref: str) -> bool:
    return ref in context.config.slots or context.core.rows.get(ref) is not None


def _as_slot(context: ServerContext, ref: str) -> str:
    """``ref``, or the slot whose folder ``ref`` is."""
    path = Path(ref).expanduser()
    if _named(context, ref) or not path.is_dir():
        return ref
    folder = path.resolve()
    return next((slot for slot in context.config.slots if context.paths.slot(slot).resolve() == folder), ref)


def _folder_to_import(context: ServerContext, ref: str) -> Path | None:
    path = Path(ref).expanduser()
    return path.resolve() if not _named(context, ref) and path.is_dir() else None


def _workspace_of(context: ServerContext, folder: Path) -> str:
    """The workspace ``folder`` was imported into, created on its first import."""
    with file_lock(context.paths.locks / "imports.lock", "The list of imported folders"):
        imports = _read_imports(context)
        name = imports.get(str(folder))
        if name is None or context.core.rows.get(name) is None:
            name = _free_name(context, folder.name)
            context.workspaces.create(name, f"Imported from {folder} by `goldfish run`.")
            imports[str(folder)] = name
            _write_imports(context, imports)
    return name


def _check_importable(context: ServerContext, folder: Path) -> None:
    paths = context.paths
    if paths.root.is_relative_to(folder) or any(
        folder.is_relative_to(inner) for inner in (paths.state_dir, paths.workspaces)
    ):
        raise InvalidPathError(
            f"{folder} holds the project or lies inside its state or slots; it cannot be imported.",
            details={"path": str(folder)},
            remedy="Pass a workspace name or slot, or a folder outside the project's .goldfish and slots.",
        )
    if not (folder / "pipeline.yaml").is_file() and not (folder / "pipelines").is_dir():
        raise InvalidArgumentError(
            f"{folder} is neither a workspace nor a folder with a pipeline (pipeline.yaml).",
            details={"path": str(folder)},
            remedy="Pass a workspace name, a slot, or a folder holding pipeline.yaml and modules/.",
        )


def _imports_file(context: ServerContext) -> Path:
    return context.paths.state_dir / IMPORTS_FILE


def _read_imports(context: ServerContext) -> dict[str, str]:
    try:
        data = json.loads(_imports_file(context).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): value for key, value in data.items() if isinstance(value, str)}


def _write_imports(context: ServerContext, imports: dict[str, str]) -> None:
    write_text_atomic(_imports_file(context), json.dumps(imports, indent=2, sort_keys=True) + "\n")


def _free_name(context: ServerContext, folder_name: str) -> str:
    """``folder_name`` made a valid workspace name, with ``-2``, ``-3``, ... when it is taken."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", folder_name).strip("-_")[:56] or "imported"
    for number in itertools.count(1):
        candidate = base if number == 1 else f"{base}-{number}"
        if candidate not in context.config.slots and context.core.rows.get(candidate) is None:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _mount_somewhere(context: ServerContext, name: str) -> tuple[str, bool]:
    """The slot holding workspace ``name`` and whether this call mounted it (in the first free slot)."""
    core = context.core
    mount = core.rows.mount_of_workspace(core.workspace(name).id)
    if mount is not None:
        return mount.slot, False
    for slot in context.config.slots:
        folder = context.paths.slot(slot)
        if core.rows.mount_of_slot(slot) is not None or (folder.is_dir() and any(folder.iterdir())):
            continue
        try:
            context.workspaces.mount(name, slot)
        except SlotOccupiedError:
            continue
        return slot, True
    raise SlotOccupiedError(
        f"Every slot is in use, so the folder cannot be brought into workspace '{name}'.",
        details={"workspace": name, "slots": context.config.slots},
        remedy="Hibernate a slot (the hibernate tool) or add a slot to `slots` in goldfish.yaml.",
    )


# -- mirroring a folder into a slot ------------------------------------------------------------
def mirror_folder(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly what ``source`` holds, minus :data:`SKIPPED_NAMES`.

    Unchanged files are left untouched (so saving the slot costs what changed); links are copied
    as links (the version save refuses those that leave the slot).
    """
    wanted: set[str] = set()
    for rel, kind in _entries(source):
        wanted.add(rel)
        _copy_entry(source / rel, target / rel, kind)
    _remove_unwanted(target, wanted)


def _entries(source: Path) -> list[tuple[str, str]]:
    """``(relative path, "dir" | "file" | "link")`` of everything to copy, parents first."""
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        kept: list[str] = []
        for name in sorted(dirnames):
            rel = (here / name).relative_to(source).as_posix()
            if name in SKIPPED_NAMES:
                continue
            if (here / name).is_symlink():
                found.append((rel, "link"))
            else:
                kept.append(name)
                found.append((rel, "dir"))
        dirnames[:] = kept
        for name in sorted(filenames):
            path = here / name
            if name in SKIPPED_NAMES or not (path.is_symlink() or path.is_file()):
                continue
            found.append((path.relative_to(source).as_posix(), "link" if path.is_symlink() else "file"))
    return found


def _copy_entry(source: Path, target: Path, kind: str) -> None:
    if kind == "dir":
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        target.mkdir(exist_ok=True)
        return
    if kind == "link":
        link = os.readlink(source)
        if target.is_symlink() and os.readlink(target) == link:
            return
        _remove(target)
        target.symlink_to(link)
        return
    if target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False):
        return
    _remove(target)
    shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _remove_unwanted(target: Path, wanted: set[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(target, topdown=False):
        here = Path(dirpath)
        for name in [*filenames, *dirnames]:
            path = here / name
            if path.relative_to(target).as_posix() not in wanted:
                _remove(path)


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
    """Follow the pipeline run until every stage is terminal or ``timeout`` seconds pass.

    The picture is re-read as soon as the database changes (``Database.wait_for_change``), at
    the latest every :data:`POLL_SECONDS`.

    Every :data:`DRIVER_CHECK_SECONDS` it makes sure a driver holds the run (one is started
    if the previous one died), as any server process would.
    """
    run_id = submission.pipeline_run_id
    if run_id is None:
        return submission
    start = time.monotonic()
    driver_checked = start
    finished_at: float | None = None
    current = submission
    progress.update(current)
    seen = context.db.data_version()
    while time.monotonic() - start < timeout:
        if current.finished:
            finished_at = finished_at or time.monotonic()
            # Stages are done; the driver marks the pipeline run itself a moment later.
            if current.state != "running" or time.monotonic() - finished_at > FINISH_GRACE_SECONDS:
                break
        seen = context.db.wait_for_change(
            seen, min(POLL_SECONDS, max(0.0, timeout - (time.monotonic() - start)))
        )
        if time.monotonic() - driver_checked > DRIVER_CHECK_SECONDS:
            context.ensure_driver(run_id)
            driver_checked = time.monotonic()
        current = context.run_service.submission(run_id, submission.version_created)
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
