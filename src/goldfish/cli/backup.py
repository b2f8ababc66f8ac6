"""``goldfish backup``, ``goldfish backups`` and ``goldfish restore``: the backup tools for people and CI."""

from __future__ import annotations

import argparse
import json
from typing import Any

from goldfish.cli.call import ProgressPrinter, tool_caller
from goldfish.errors import InvalidArgumentError

DEFAULT_REASON = "Backup from the goldfish command line"
DEFAULT_RESTORE_REASON = "Restore from the goldfish command line"


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items())


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def cmd_backup(args: argparse.Namespace) -> int:
    """Take a backup now (create_backup)."""
    arguments = {"reason": args.reason, "include_outputs": args.include_outputs}
    with tool_caller(args.project) as caller:
        payload = caller.call("create_backup", arguments, ProgressPrinter())
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    backup = payload
    print(f"backup {backup['backup_id']}: {_size(backup['size_bytes'])} at {backup['location']}")
    print(f"  {_counts(backup['counts'])}")
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    """List backups, newest first (list_backups)."""
    with tool_caller(args.project) as caller:
        payload = caller.call("list_backups", {"limit": args.limit})
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    for backup in payload["backups"]:
        kind = "auto" if backup.get("automatic") else "manual"
        print(
            f"{backup['backup_id']}  {backup['created']}  {_size(backup['size_bytes']):>9}  {kind:<6}  "
            f"{_counts(backup['counts'])}"
        )
    print(f"({len(payload['backups'])} of {payload['total']} backups)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup into an empty folder (--into) or in place (--in-place)."""
    if (args.into is None) == (not args.in_place):
        raise InvalidArgumentError(
            "Say where to restore: --into DIR (an empty or new folder) or --in-place.",
            details={"field": "--into"},
            remedy="Pass --into DIR, or --in-place to replace this project (a backup of it is taken first).",
        )
    arguments: dict[str, Any] = {"backup_id": args.backup_id, "reason": args.reason}
    if args.into is not None:
        arguments["target"] = args.into
    with tool_caller(args.project) as caller:
        payload = caller.call("restore_backup", arguments, ProgressPrinter())
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    restored = payload
    print(f"restored {restored['backup_id']} into {restored['project_root']}")
    print(f"  {_counts(restored['counts'])}")
    print(f"  database integrity: {restored['integrity_check']}; versions: {restored['version_store_check']}")
    if restored.get("safety_backup_id"):
        print(f"  the state before the restore is backup {restored['safety_backup_id']}")
    if not restored["outputs_included"]:
        print("  run outputs were not in this backup: runs keep their records, logs and metrics")
    return 0


def add_backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``backup``, ``backups``, ``restore``."""
    backup = sub.add_parser("backup", help="back up the project (database, versions, config, run logs)")
    backup.add_argument("--reason", default=DEFAULT_REASON, help="why (15+ characters)")
    backup.add_argument("--include-outputs", action="store_true", help="also copy run outputs")
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(func=cmd_backup)

    backups = sub.add_parser("backups", help="list backups, newest first")
    backups.add_argument("--limit", type=int, default=50, help="at most this many (1-200)")
    backups.add_argument("--json", action="store_true")
    backups.set_defaults(func=cmd_backups)

    restore = sub.add_parser(
        "restore",
        help="restore a backup into an empty folder, or in place",
        description="In place is refused while runs are active (RUNS_ACTIVE) and backs up the current "
        "state first.",
    )
    restore.add_argument("backup_id", metavar="BACKUP_ID", help="from `goldfish backups`")
    restore.add_argument("--into", metavar="DIR", help="an empty or new folder")
    restore.add_argument("--in-place", action="store_true", help="replace this project with the backup")
    restore.add_argument("--reason", default=DEFAULT_RESTORE_REASON, help="why (15+ characters)")
    restore.add_argument("--json", action="store_true")
    restore.set_defaults(func=cmd_restore)
    for command in (backup, backups, restore):
        command.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
