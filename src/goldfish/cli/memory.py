"""``goldfish sources add|list``, ``finalize``, ``history`` and ``compare``: the memory tools for people.

Each command calls the tool an agent would call (through :func:`goldfish.cli.call.tool_caller`),
so validation, errors, audit rows and ``--json`` output are the tool's own; this module only
turns arguments into tool arguments and results into text.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from goldfish.cli.call import ToolCaller, tool_caller

if TYPE_CHECKING:
    from goldfish.memory.record_models import FinalizeInfo

OUTCOMES = ("success", "partial", "miss", "unknown")
PAGE = 200
DEFAULT_SOURCE_REASON = "Registered from the goldfish command line"


def finalize_line(info: FinalizeInfo) -> str:
    """One line saying what was recorded."""
    done = info.finalization.results
    return (
        f"finalized {info.record.pipeline_run_id}: {done.get('primary_metric')} = {_num(done.get('value'))}, "
        f"{done.get('ml_outcome')}"
    )


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2))


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


# -- sources ------------------------------------------------------------------------------------
def cmd_sources_add(args: argparse.Namespace) -> int:
    """Register a dataset (register_source)."""
    arguments: dict[str, Any] = {
        "name": args.name,
        "uri": args.uri,
        "description": args.description,
        "reason": args.reason,
    }
    if args.metadata:
        arguments["metadata"] = json.loads(args.metadata)
    with tool_caller(args.project) as caller:
        payload = caller.call("register_source", arguments)
    if args.json:
        _print(payload)
        return 0
    source = payload["source"]
    print(f"registered source '{source['name']}': {source['uri']}")
    print(f"  hash {source.get('content_hash') or '-'}, {source.get('size_bytes') or 0} bytes")
    return 0


def cmd_sources_list(args: argparse.Namespace) -> int:
    """List registered sources (manage_sources action=list)."""
    with tool_caller(args.project) as caller:
        payload = caller.call("manage_sources", {"action": "list", "limit": args.limit})
    if args.json:
        _print(payload)
        return 0
    for source in payload["sources"]:
        state = f" ({source['status']})" if source.get("status") not in (None, "active") else ""
        print(f"{source['name']:<24} {source['uri']}{state}")
    print(f"({len(payload['sources'])} of {payload['total']} sources)")
    return 0


# -- finalize -----------------------------------------------------------------------------------
def cmd_finalize(args: argparse.Namespace) -> int:
    """Record a run's outcome (finalize_run), from its results spec and --value."""
    with tool_caller(args.project) as caller:
        detail = caller.call("inspect_record", {"ref": args.ref, "include": ["results"]})["inspect"]
        record = detail["record"]
        suggestion = detail.get("suggestion") or {}
        value = args.value if args.value is not None else suggestion.get("value")
        from goldfish.memory.auto_results import results_from  # noqa: PLC0415 - not loaded by other commands

        results = results_from(record.get("results_spec") or {}, value, args.outcome, args.notes)
        arguments: dict[str, Any] = {"record_or_run_id": args.ref, "results": results}
        if args.reason:
            arguments["reason"] = args.reason
        payload = caller.call("finalize_run", arguments)
    if args.json:
        _print(payload)
        return 0
    final = payload["finalize"]
    done = final["record"]
    print(
        f"finalized {done.get('pipeline_run_id') or done['record_id']} "
        f"({done['workspace']} {done['version']}): {results['primary_metric']} = "
        f"{_num(results['value'])}, {results['ml_outcome']}"
    )
    for warning in final.get("warnings") or []:
        print(f"  warning: {warning}")
    return 0


# -- history ------------------------------------------------------------------------------------
def _workspaces(caller: ToolCaller) -> list[str]:
    names: list[str] = []
    while True:
        page = caller.call("list_workspaces", {"limit": PAGE, "offset": len(names)})
        names += [item["name"] for item in page["workspaces"]]
        if not page["workspaces"] or len(names) >= page["total"]:
            return names


def _history(caller: ToolCaller, args: argparse.Namespace) -> dict[str, Any]:
    query = {"sort_by": args.sort, "limit": args.limit}
    if args.workspace:
        return caller.call("list_history", {"workspace": args.workspace, **query})
    records: list[dict[str, Any]] = []
    total = 0
    for name in _workspaces(caller):
        page = caller.call("list_history", {"workspace": name, **query})
        records += page["records"]
        total += page["total"]
    if args.sort == "metric":
        records.sort(
            key=lambda r: (r["value"] is None, -(r["value"] or 0.0) if r["value"] is not None else 0)
        )
    else:
        records.sort(key=lambda r: r["created_at"], reverse=True)
    return {"success": True, "records": records[: args.limit], "total": total}


def cmd_history(args: argparse.Namespace) -> int:
    """Runs and versions with their outcomes (list_history; every workspace without --workspace)."""
    with tool_caller(args.project) as caller:
        payload = _history(caller, args)
    if args.json:
        _print(payload)
        return 0
    header = ("RECORD", "WORKSPACE", "VERSION", "RUN", "STATE", "OUTCOME", "METRIC", "AGE")
    rows = [header] + [
        (
            r["record_id"][-10:],
            r["workspace"],
            r["version"],
            r["pipeline_run_id"] or r["record_type"],
            r["run_state"] or "-",
            r["ml_outcome"] or ("unfinalized" if r["record_type"] == "run" else "-"),
            f"{r['primary_metric']}={_num(r['value'])}" if r["primary_metric"] else "-",
            r["age"] or "-",
        )
        for r in payload["records"]
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"({len(payload['records'])} of {payload['total']} records)")
    return 0


# -- compare ------------------------------------------------------------------------------------
def cmd_compare(args: argparse.Namespace) -> int:
    """What differs between two runs (compare_runs)."""
    arguments: dict[str, Any] = {"run_a": args.run_a, "run_b": args.run_b}
    if args.workspace:
        arguments["workspace"] = args.workspace
    with tool_caller(args.project) as caller:
        payload = caller.call("compare_runs", arguments)
    if args.json:
        _print(payload)
        return 0
    comparison = payload["comparison"]
    print(f"{comparison['run_a']} -> {comparison['run_b']} ({comparison['mode']})")
    for line in comparison["summary"]:
        print(f"  {line}")
    return 0


def add_memory_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sources add|list``, ``finalize``, ``history``, ``compare``."""
    sources = sub.add_parser("sources", help="register and list datasets")
    verbs = sources.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="register a dataset as a named, immutable source")
    add.add_argument("name", help="the name pipelines use (type: dataset, dataset: NAME)")
    add.add_argument("uri", help="a path under data/, file://... or gs://...")
    add.add_argument("--description", required=True, help="what the data is")
    add.add_argument("--reason", default=DEFAULT_SOURCE_REASON, help="why (15+ characters)")
    add.add_argument("--metadata", metavar="JSON", help="facts about the data as a JSON object")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_sources_add)
    listing = verbs.add_parser("list", help="list registered sources")
    listing.add_argument("--limit", type=int, default=PAGE, help="at most this many (1-200)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_sources_list)

    finalize = sub.add_parser("finalize", help="record a finished run's outcome")
    finalize.add_argument("ref", metavar="RUN_OR_RECORD", help="prun-..., stage-... or a record id")
    finalize.add_argument("--value", type=float, help="the primary metric (default: its last logged value)")
    finalize.add_argument("--outcome", choices=OUTCOMES, help="default: from the spec's goal/min values")
    finalize.add_argument("--notes", default="", help="what you learned")
    finalize.add_argument("--reason", help="required to finalize a run again (15+ characters)")
    finalize.add_argument("--json", action="store_true")
    finalize.set_defaults(func=cmd_finalize)

    history = sub.add_parser("history", help="runs and versions with their outcomes")
    history.add_argument("--workspace", "-w", help="one workspace (default: all)")
    history.add_argument("--sort", choices=("created", "metric"), default="created")
    history.add_argument("--limit", type=int, default=50, help="at most this many (1-200)")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)

    compare = sub.add_parser("compare", help="what differs between two runs")
    compare.add_argument("run_a", metavar="A", help="the baseline run (prun-..., stage-..., record, @tag)")
    compare.add_argument("run_b", metavar="B", help="the run to compare with it")
    compare.add_argument("--workspace", help="workspace of @tag refs")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)
    for command in (add, listing, finalize, history, compare):
        command.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
