"""The ``goldfish`` command: init, serve, ui, status, run, runs, logs, plot, db-path, schema, demo, doctor.

``run``, ``runs`` and ``logs`` are the headless (CI) face of the run tools: they open the same
``ServerContext`` and call the same services; helpers beyond argument parsing live in
``goldfish.cli.runs``. The memory, backup and ``call`` commands live in ``cli.memory``,
``cli.backup`` and ``cli.call`` (they call the tools through an in-process MCP session);
``cli.errors`` prints errors in CLI terms and picks exit codes (4: the finalization gate).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goldfish import __version__
from goldfish.cli.backup import add_backup_parsers
from goldfish.cli.call import add_call_parser
from goldfish.cli.doctor import add_doctor_parser
from goldfish.cli.memory import add_memory_parsers
from goldfish.cli.secrets import add_secrets_parser
from goldfish.errors import GoldfishError, InvalidArgumentError
from goldfish.states import StageState

if TYPE_CHECKING:
    from goldfish.context import ServerContext
    from goldfish.driver_entry import DriverFork
    from goldfish.runs.models import RunSubmission
    from goldfish.runs.requests import RunRequest

log = logging.getLogger("goldfish")

DEFAULT_REASON = "Headless run from the goldfish CLI"
UI_TOKEN_ENV = "GOLDFISH_UI_TOKEN"  # noqa: S105 - the name of the variable, not a secret


def _setup_logging(log_dir: Path | None, verbose: bool = False) -> None:
    """Logs go to stderr (never stdout: that is the MCP channel) and to .goldfish/logs/server.log."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "server.log", encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(error: GoldfishError, as_json: bool = False) -> int:
    """Print an error (its JSON with --json, else in CLI terms) and return its exit code."""
    from goldfish.cli import errors as cli_errors  # noqa: PLC0415

    if as_json:
        print(json.dumps({"success": False, "error": error.to_dict()}, indent=2))
        return cli_errors.exit_code_for(error.code)
    return cli_errors.render(error, sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    """Create a project in DIR (default: the current folder)."""
    from goldfish.server.app_state import GoldfishApp  # noqa: PLC0415

    root = Path(args.dir).resolve()
    app = GoldfishApp(None)
    result = app.initialize(str(root), args.name or root.name, args.from_existing)
    app.close()
    if args.json:
        print(result.model_dump_json(indent=2))
    elif result.already_initialized:
        print(f"Project '{result.project_name}' at {result.project_root} is already initialized.")
    else:
        print(f"Initialized project '{result.project_name}' at {result.project_root}")
        for path in result.created:
            print(f"  created {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve MCP over stdio (default) or streamable HTTP."""
    from goldfish.project import discover_project  # noqa: PLC0415
    from goldfish.server.app import server_for  # noqa: PLC0415

    try:
        root: Path | None = discover_project(args.project)
    except GoldfishError as exc:
        if args.project:
            return _fail(exc)
        root = None
    _setup_logging(root / ".goldfish" / "logs" if root else None, args.verbose)
    if root is None:
        log.warning("no project found; serving until initialize_project creates one")
    if args.http:
        import uvicorn  # noqa: PLC0415

        from goldfish.server.app import http_app  # noqa: PLC0415
        from goldfish.server.app_state import GoldfishApp  # noqa: PLC0415

        host, _, port = args.http.rpartition(":")
        host = host or "127.0.0.1"
        token = os.environ.get(UI_TOKEN_ENV) or None
        uvicorn.run(http_app(GoldfishApp(root), host, token), host=host, port=int(port), log_level="info")
    else:
        server_for(root).run()
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web dashboard (read-only) until interrupted."""
    import uvicorn  # noqa: PLC0415

    from goldfish.web.app import build_dashboard, is_loopback  # noqa: PLC0415

    token = args.token or os.environ.get(UI_TOKEN_ENV) or None
    if not is_loopback(args.host) and not token:
        raise InvalidArgumentError(
            f"The dashboard refuses to listen on {args.host} without a token.",
            details={"field": "host", "host": args.host},
            remedy=f"Pass --token T (or set {UI_TOKEN_ENV}), or keep the default --host 127.0.0.1.",
        )
    context = _open(args.project)
    _setup_logging(None)
    try:
        app = build_dashboard(lambda: context, token=token, loopback_only=not token)
        shown = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
        address = f"http://{shown}:{args.port}/" + (f"?token={token}" if token else "")
        print(f"Goldfish dashboard of '{context.config.project_name}': {address}", flush=True)
        print("Read-only; Ctrl-C stops it.", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        context.close()
    return 0


def _driver_fork(project: str | None) -> DriverFork | None:
    """A fork standing by to drive the run (before any database is opened; see ``DriverFork``)."""
    import threading  # noqa: PLC0415

    # Imported before the fork, once for both processes (the stage backend too).
    import goldfish.backends.process.backend  # noqa: PLC0415, F401
    from goldfish.driver_entry import DriverFork  # noqa: PLC0415 - with the context and the driver
    from goldfish.paths import STATE_DIR  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415

    if threading.active_count() != 1 or not hasattr(os, "fork"):
        return None
    try:
        root = discover_project(project)
    except GoldfishError:
        return None  # _open reports it
    return DriverFork(root, root.resolve() / STATE_DIR / "logs")


def _open(project: str | None) -> ServerContext:
    from goldfish.context import ServerContext  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415

    return ServerContext.open(discover_project(project))


def cmd_status(args: argparse.Namespace) -> int:
    """Print the project's status (STATE.md, which lists active runs) as text, or everything as JSON."""
    context = _open(args.project)
    try:
        info = context.overview.status(context.state.render())
    finally:
        context.close()
    if args.json:
        print(info.model_dump_json(indent=2))
        return 0
    print(info.state_md)
    if info.gpus:
        held = ", ".join(f"{gpu['index']}: {gpu['held_by'] or 'free'}" for gpu in info.gpus["gpus"])
        print(f"\nGPUs ({info.gpus['count']}, via {info.gpus['source']}): {held}")
    return 0


def _submit(context: ServerContext, args: argparse.Namespace) -> RunSubmission:
    """``run`` through the run service, as the MCP tool does (a folder is imported first)."""
    from goldfish.cli import runs as cli_runs  # noqa: PLC0415
    from goldfish.workspaces.files import SlotFiles  # noqa: PLC0415

    def request(workspace: str, spec: dict[str, Any] | None) -> RunRequest:
        return context.run_service.build_request(
            workspace=workspace,
            stages=cli_runs.stage_list(args.stages),
            pipeline=args.pipeline,
            config_override=None,
            inputs_override=None,
            reason=args.reason,
            results_spec=spec,
            experiment_group=args.experiment_group,
            dry_run=args.dry_run,
            use_cache=not args.no_cache,
            profile=args.profile,
        )

    spec = cli_runs.results_spec(context, None, args.results_spec, required=False)
    folder = context.folder_imports.folder_to_import(args.workspace)
    if folder is not None:
        # Everything is checked against the folder itself before it becomes a workspace.
        files = SlotFiles(folder)
        if spec is None:
            spec = cli_runs.spec_in(files, required=not args.dry_run)
        context.run_service.plan(files, request(args.workspace, spec))
    with context.folder_imports.workspace_to_run(args.workspace) as workspace:
        if spec is None:
            spec = cli_runs.results_spec(context, workspace, None, required=not args.dry_run)
        return context.run_service.submit(request(workspace, spec))


def cmd_run(args: argparse.Namespace) -> int:
    """Run a workspace's pipeline (or a folder's, imported as a workspace); with --wait, until it ends."""
    from goldfish.cli import memory as cli_memory  # noqa: PLC0415
    from goldfish.cli import runs as cli_runs  # noqa: PLC0415
    from goldfish.memory.auto_results import finalize_auto  # noqa: PLC0415

    if args.finalize and not args.wait:
        raise InvalidArgumentError(
            "--finalize auto needs --wait: a run is finalized once it has ended.",
            details={"field": "--finalize"},
            remedy="Add --wait, or finalize later with `goldfish finalize RUN --value V`.",
        )
    finalized = None
    fork = _driver_fork(args.project) if not args.dry_run else None
    try:
        context = _open(args.project)
        context.driver_fork = fork
        try:
            submission = _submit(context, args)
            if args.wait and not submission.finished:
                progress = cli_runs.make_progress(sys.stderr)
                submission = cli_runs.wait_for(context, submission, args.timeout, progress)
            code = cli_runs.exit_code(submission) if args.wait or submission.finished else cli_runs.EXIT_OK
            ended = code in (cli_runs.EXIT_OK, cli_runs.EXIT_FAILED)
            if args.finalize and ended and submission.pipeline_run_id and not args.dry_run:
                finalized = finalize_auto(
                    context.records, submission.pipeline_run_id, succeeded=code == cli_runs.EXIT_OK
                )
        finally:
            context.close()
    finally:
        if fork is not None:
            fork.close()
    if args.json:
        payload = json.loads(submission.model_dump_json())
        if finalized is not None:
            payload["finalize"] = finalized.model_dump(mode="json")
        print(json.dumps(payload, indent=2))
    else:
        cli_runs.print_summary(submission, sys.stdout)
        if finalized is not None:
            print(cli_memory.finalize_line(finalized), file=sys.stdout)
    return code


def cmd_runs(args: argparse.Namespace) -> int:
    """List stage runs, newest first."""
    from goldfish.cli import runs as cli_runs  # noqa: PLC0415

    filters = {
        "workspace": args.workspace,
        "state": args.state,
        "stage": args.stage,
        "pipeline_run_id": args.pipeline_run,
    }
    context = _open(args.project)
    try:
        runs, total = cli_runs.list_stage_runs(context, filters, args.limit)
    finally:
        context.close()
    if args.json:
        payload = {"runs": [run.model_dump(mode="json") for run in runs], "total": total}
        print(json.dumps(payload, indent=2))
    else:
        print("\n".join(cli_runs.runs_table(runs)))
        print(f"({len(runs)} of {total} stage runs)")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a run's log; --follow keeps printing until the run ends."""
    from goldfish.cli import runs as cli_runs  # noqa: PLC0415

    context = _open(args.project)
    try:
        cli_runs.print_logs(context, args.run_id, args.stream, args.tail, args.follow, sys.stdout)
    finally:
        context.close()
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw one metric of 1 to 8 stage runs into a PNG file (needs the plot extra)."""
    output = Path(args.output)
    context = _open(args.project)
    try:
        rendered = context.plotter.plot(args.run_ids, args.metric)
    finally:
        context.close()
    try:
        output.write_bytes(rendered.png)
    except OSError as exc:
        raise InvalidArgumentError(
            f"Cannot write {output}: {exc.strerror or exc}.",
            details={"field": "output", "path": str(output)},
            remedy="Pass -o with a file path in a folder that exists and is writable.",
        ) from None
    if args.json:
        payload = {"success": True, "path": str(output), "plot": rendered.plot.model_dump(mode="json")}
        print(json.dumps(payload, indent=2))
        return 0
    plot = rendered.plot
    print(f"wrote {output} ({plot.width}x{plot.height}, {plot.metric} over {plot.x_axis})")
    for run in plot.runs:
        if run.count:
            numbers = f"last {run.last:g} min {run.min:g} max {run.max:g} ({run.count} points)"
            print(f"  {run.run_id} {run.stage}: {numbers}")
        else:
            print(f"  {run.run_id} {run.stage}: never logged {plot.metric}")
    return 0


def cmd_db_path(args: argparse.Namespace) -> int:
    """Print where the SQLite database is, for `sqlite3 "$(goldfish db-path)"`."""
    from goldfish.config import load_config  # noqa: PLC0415
    from goldfish.paths import ProjectPaths  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415

    root = discover_project(args.project)
    print(ProjectPaths.of(root, load_config(root)).database)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of goldfish.yaml and pipeline.yaml."""
    from goldfish.schemas import write_schemas  # noqa: PLC0415

    for path in write_schemas(Path(args.out)):
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the demo model end to end in a fresh project through a real MCP client session."""
    from goldfish.demo import run_demo  # noqa: PLC0415

    return run_demo(Path(args.dir) if args.dir else None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="goldfish", description="ML experiments with memory and provenance."
    )
    parser.add_argument("--version", action="version", version=f"goldfish {__version__}")
    parser.add_argument(
        "--project", dest="global_project", metavar="DIR", help="project folder for any command"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create a project")
    init.add_argument("dir", nargs="?", default=".")
    init.add_argument("--name", help="project name (default: the folder name)")
    init.add_argument("--from-existing", action="store_true", help="adopt an existing goldfish.yaml")
    init.add_argument("--json", action="store_true")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser("serve", help="serve MCP (stdio by default)")
    serve.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--verbose", action="store_true")
    serve.set_defaults(func=cmd_serve)

    ui = sub.add_parser("ui", help="serve the web dashboard (read-only) on 127.0.0.1:8766")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (not loopback: needs a token)")
    ui.add_argument("--port", type=int, default=8766)
    ui.add_argument("--token", help=f"require this token on every request (default: ${UI_TOKEN_ENV})")
    ui.set_defaults(func=cmd_ui)

    status = sub.add_parser("status", help="print the project status")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    _add_run_parsers(sub)
    add_doctor_parser(sub)
    add_memory_parsers(sub)
    add_backup_parsers(sub)
    add_call_parser(sub)
    add_secrets_parser(sub)

    plot = sub.add_parser("plot", help="draw a metric of 1 to 8 stage runs into a PNG")
    plot.add_argument("run_ids", nargs="+", metavar="RUN", help="stage run ids (stage-...)")
    plot.add_argument("--metric", required=True, help="the metric to draw, e.g. loss")
    plot.add_argument("-o", "--output", required=True, metavar="FILE", help="the PNG file to write")
    plot.add_argument("--json", action="store_true", help="print the numbers drawn as JSON")
    plot.set_defaults(func=cmd_plot)

    db_path = sub.add_parser("db-path", help="print the SQLite database path")
    db_path.set_defaults(func=cmd_db_path)

    schema = sub.add_parser("schema", help="write JSON Schemas for goldfish.yaml and pipeline.yaml")
    schema.add_argument("--out", default="schema")
    schema.set_defaults(func=cmd_schema)

    demo = sub.add_parser("demo", help="run the demo ML pipeline end to end in a temporary project")
    demo.add_argument("dir", nargs="?", help="where to create the demo project (default: a temp folder)")
    demo.set_defaults(func=cmd_demo)

    for command in (
        serve,
        ui,
        status,
        plot,
        db_path,
        *(sub.choices[name] for name in ("run", "runs", "logs")),
    ):
        command.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
    return parser


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most a week of seconds")
    return seconds


def _add_run_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run a workspace's pipeline without an agent (CI)",
        description="Exit codes with --wait: 0 every stage completed, 1 a stage failed, was canceled, "
        "timed out or was skipped, 2 invalid arguments or pipeline, 3 --timeout passed first, "
        "4 earlier runs of the workspace wait for `goldfish finalize` (the finalization gate).",
    )
    run.add_argument("workspace", help="workspace name, slot, or a folder with pipeline.yaml (imported)")
    run.add_argument("--stages", help="comma-separated stages to run (default: all)")
    run.add_argument("--pipeline", help="named pipeline (pipelines/NAME.yaml)")
    run.add_argument("--wait", action="store_true", help="wait until every stage ends; exit code says how")
    run.add_argument("--timeout", type=_positive_seconds, default=3600.0, help="longest --wait (seconds)")
    run.add_argument("--json", action="store_true", help="print the run as JSON at the end")
    run.add_argument("--reason", default=DEFAULT_REASON, help="why (15+ characters)")
    run.add_argument(
        "--results-spec", metavar="FILE", help="JSON/YAML (default: the workspace's results_spec.yaml)"
    )
    run.add_argument("--experiment-group", help="group related runs")
    run.add_argument("--profile", help="resource profile for every stage")
    run.add_argument(
        "--no-cache", action="store_true", help="run every stage even if an identical run exists"
    )
    run.add_argument("--dry-run", action="store_true", help="validate and plan only")
    run.add_argument(
        "--finalize",
        choices=["auto"],
        help="with --wait, on success record the outcome from the results spec (primary metric's last "
        "value; success/partial/miss from goal_value/min_value) so the next run is not gated",
    )
    run.set_defaults(func=cmd_run)

    runs = sub.add_parser("runs", help="list stage runs, newest first")
    runs.add_argument("--workspace", help="only this workspace (or slot)")
    runs.add_argument("--state", choices=[state.value for state in StageState], help="only this state")
    runs.add_argument("--stage", help="only this stage")
    runs.add_argument("--pipeline-run", help="only the stages of this pipeline run (prun-...)")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (1-200)")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    logs = sub.add_parser("logs", help="print a run's log")
    logs.add_argument("run_id", help="stage run id (stage-...), or prun-... for every stage in order")
    logs.add_argument("--stream", choices=["stdout", "stderr", "both"], default="stdout")
    logs.add_argument("--tail", type=int, default=100, help="last N lines to start with (1-5000)")
    logs.add_argument("--follow", action="store_true", help="keep printing until the run ends")
    logs.set_defaults(func=cmd_logs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``goldfish`` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "project", None) is None:
        args.project = args.global_project
    try:
        return int(args.func(args))
    except GoldfishError as exc:
        return _fail(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        return 130
