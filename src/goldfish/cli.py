"""The ``goldfish`` command: init, serve, status, db-path, schema, demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from goldfish import __version__
from goldfish.errors import GoldfishError

log = logging.getLogger("goldfish")


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
    if as_json:
        print(json.dumps({"success": False, "error": error.to_dict()}, indent=2))
    else:
        print(f"error [{error.code}]: {error.message}", file=sys.stderr)
        if error.remedy:
            print(f"  {error.remedy}", file=sys.stderr)
    return 2


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
    server = server_for(root)
    if args.http:
        host, _, port = args.http.rpartition(":")
        server.run("streamable-http", host=host or "127.0.0.1", port=int(port))
    else:
        server.run()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the project's status as text or JSON."""
    from goldfish.context import ServerContext  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415

    context = ServerContext.open(discover_project(args.project))
    try:
        info = context.overview.status(context.state.render())
    finally:
        context.close()
    if args.json:
        print(info.model_dump_json(indent=2))
    else:
        print(info.state_md)
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
    """Walk the workspace flow in a fresh project through a real MCP client session."""
    from goldfish.demo import run_demo  # noqa: PLC0415

    return run_demo(Path(args.dir) if args.dir else None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="goldfish", description="ML experiments with memory and provenance."
    )
    parser.add_argument("--version", action="version", version=f"goldfish {__version__}")
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

    status = sub.add_parser("status", help="print the project status")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    db_path = sub.add_parser("db-path", help="print the SQLite database path")
    db_path.set_defaults(func=cmd_db_path)

    schema = sub.add_parser("schema", help="write JSON Schemas for goldfish.yaml and pipeline.yaml")
    schema.add_argument("--out", default="schema")
    schema.set_defaults(func=cmd_schema)

    demo = sub.add_parser("demo", help="walk the workspace flow in a temporary project")
    demo.add_argument("dir", nargs="?", help="where to create the demo project (default: a temp folder)")
    demo.set_defaults(func=cmd_demo)

    for command in (serve, status, db_path):
        command.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``goldfish`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GoldfishError as exc:
        return _fail(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
