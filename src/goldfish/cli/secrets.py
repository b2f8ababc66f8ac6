"""``goldfish secrets set NAME | list | rm NAME``: the project's secret store, for people.

A value is read from stdin when it is not a terminal, else from a hidden prompt (``getpass``);
never from the command line, where the shell history and the process list would keep it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from goldfish.errors import InvalidArgumentError


def add_secrets_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``goldfish secrets``."""
    secrets = sub.add_parser(
        "secrets",
        help="set, list or remove the project's secrets (values never on the command line)",
        description="Values live in .goldfish/secrets.env (mode 0600), never in a version or a backup.",
    )
    actions = secrets.add_subparsers(dest="action", required=True)
    set_ = actions.add_parser("set", help="store NAME's value, read from stdin or a hidden prompt")
    set_.add_argument("name", help="the environment variable the stage reads, e.g. HF_TOKEN")
    list_ = actions.add_parser("list", help="names, where each is set and which stages use it")
    list_.add_argument("--json", action="store_true")
    rm = actions.add_parser("rm", help="forget NAME's stored value")
    rm.add_argument("name")
    for parser in (set_, list_, rm):
        parser.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
        parser.set_defaults(func=cmd_secrets)


def _read_value(name: str) -> str:
    """The value from stdin (a pipe: one line, the newline dropped) or a hidden prompt."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"Value for {name} (hidden): ")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise InvalidArgumentError(
            f"No value was given for {name}.",
            details={"name": name},
            remedy=f'Pipe it in (printf %s "$VALUE" | goldfish secrets set {name}) or type it at the prompt.',
        )
    return value


def cmd_secrets(args: argparse.Namespace) -> int:
    """Run one ``goldfish secrets`` action."""
    from goldfish.config import load_config  # noqa: PLC0415 - the CLI loads lazily
    from goldfish.paths import ProjectPaths  # noqa: PLC0415
    from goldfish.project import discover_project  # noqa: PLC0415
    from goldfish.secrets.store import SecretStore, check_secret_name  # noqa: PLC0415

    root = discover_project(args.project)
    if args.action == "list":
        return _list(root, args.json)
    store = SecretStore(ProjectPaths.of(root, load_config(root)).state_dir)
    name = check_secret_name(args.name)
    if args.action == "set":
        store.set(name, _read_value(name))
        print(f"stored {name} in .goldfish/secrets.env", file=sys.stderr)
    else:
        removed = store.remove(name)
        print(f"{'removed' if removed else 'no stored value for'} {name}", file=sys.stderr)
    return 0


def _list(root: Path, as_json: bool) -> int:
    from goldfish.context import ServerContext  # noqa: PLC0415

    context = ServerContext.open(root)
    try:
        listing = context.secret_service.listing()
    finally:
        context.close()
    if as_json:
        print(json.dumps(listing.model_dump(), indent=2))
        return 0
    if not listing.secrets:
        print("no secrets stored or used (goldfish secrets set NAME stores one)")
    for item in listing.secrets:
        where = ", ".join(item.set_in) or "NOT SET"
        used = f"; used by {', '.join(item.used_by)}" if item.used_by else ""
        print(f"{item.name}: {where}{used}")
    return 0
