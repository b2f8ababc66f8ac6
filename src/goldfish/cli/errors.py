"""Errors in command-line terms: exit codes, the details that matter, remedies as commands.

Services and tools word their remedies for agents (``finalize_run(...)``, ``from_existing=true``);
a person at a terminal needs the ``goldfish`` command instead. :func:`render` prints an error's
message, its problems or other short details, and its remedy with tool calls rewritten as commands.
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

from goldfish.errors import GoldfishError
from goldfish.memory.record_models import FinalizationRequiredError

EXIT_INVALID = 2
EXIT_GATE = 4
GATE_CODE = FinalizationRequiredError.code
MAX_DETAIL_LINES = 20
MAX_VALUE_CHARS = 200

# Tools that have a command of their own; any other snake_case tool name becomes `goldfish call NAME`.
COMMANDS = {
    "register_source": "goldfish sources add NAME URI --description D",
    "manage_sources": "goldfish sources list",
    "finalize_run": "goldfish finalize RUN --value V",
    "list_unfinalized_runs": "goldfish call list_unfinalized_runs",
    "list_history": "goldfish history",
    "compare_runs": "goldfish compare A B",
    "create_backup": "goldfish backup",
    "list_backups": "goldfish backups",
    "restore_backup": "goldfish restore BACKUP_ID --into DIR",
    "reload_config": "the next goldfish command (it reads goldfish.yaml afresh)",
    "plot_metrics": "goldfish plot RUN --metric M -o FILE.png",
    "get_logs": "goldfish logs RUN",
    "list_runs": "goldfish runs",
}
PHRASES = {
    "from_existing=true": "--from-existing",
    "details.problems": "the problems above",
    "details.runs": "the runs above",
    "Pass reason": "Pass --reason",
}
_CALL = re.compile(r"\b([a-z]+(?:_[a-z]+)+)\(([^()]*)\)")
_BARE = re.compile(r"(?<![\w`/.-])([a-z]+(?:_[a-z]+)+)(?![\w(/.-])")
_KWARG = re.compile(r"(\w+)\s*=\s*('[^']*'|\"[^\"]*\"|[^,\s]+)")


def exit_code_for(code: str) -> int:
    """4 for the finalization gate, 2 for every other error."""
    return EXIT_GATE if code == GATE_CODE else EXIT_INVALID


def _json_value(text: str) -> Any:
    if text[:1] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _as_command(match: re.Match[str], tools: frozenset[str]) -> str:
    name, inner = match.group(1), match.group(2)
    if name not in tools:
        return match.group(0)
    if name in COMMANDS and not inner.strip():
        return f"`{COMMANDS[name]}`"
    arguments = {key: _json_value(value) for key, value in _KWARG.findall(inner)}
    if not arguments:
        return f"`{COMMANDS.get(name, f'goldfish call {name}')}`"
    return f"`goldfish call {name} --args '{json.dumps(arguments)}'`"


def in_cli_terms(text: str, tools: frozenset[str]) -> str:
    """``text`` with tool calls and tool names rewritten as ``goldfish`` commands."""
    for phrase, replacement in PHRASES.items():
        text = text.replace(phrase, replacement)
    text = _CALL.sub(lambda m: _as_command(m, tools), text)

    def bare(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in tools:
            return name
        return f"`{COMMANDS.get(name, f'goldfish call {name}')}`"

    # Rewrite bare names only outside the commands written above (they are in backticks).
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if i % 2 else _BARE.sub(bare, part) for i, part in enumerate(parts))


def tool_names() -> frozenset[str]:
    """The names of every registered tool (the registry is built without a project)."""
    from goldfish.server.app_state import GoldfishApp  # noqa: PLC0415
    from goldfish.server.toolkit import ToolRegistry  # noqa: PLC0415
    from goldfish.server.tools import register_all  # noqa: PLC0415

    registry = ToolRegistry(GoldfishApp(None))
    register_all(registry)
    return frozenset(registry.tools)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _problem_line(problem: Any) -> str:
    if not isinstance(problem, dict):
        return _short(problem)
    where = ":".join(str(problem[key]) for key in ("path", "file", "line") if problem.get(key) is not None)
    stage = f"[{problem['stage']}] " if problem.get("stage") else ""
    field = problem.get("field") or problem.get("key") or ""
    message = problem.get("problem") or problem.get("message") or ""
    head = " ".join(part for part in (where, stage + str(field)) if part)
    return f"{head}: {message}" if head else _short(message)


def _gate_lines(details: dict[str, Any]) -> list[str]:
    lines = []
    for run in details.get("runs") or []:
        suggestion = run.get("suggestion") or {}
        value = suggestion.get("value")
        value_text = f"{value:g}" if isinstance(value, int | float) else "V"
        note = f"  (last {suggestion.get('primary_metric')}: {value:g})" if value_text != "V" else ""
        lines.append(f"goldfish finalize {run.get('pipeline_run_id')} --value {value_text}{note}")
    return lines


def detail_lines(error: GoldfishError) -> list[str]:
    """The details a person needs: problems one per line, else short key: value lines."""
    details = error.details or {}
    if error.code == GATE_CODE:
        return _gate_lines(details)
    problems = details.get("problems")
    if isinstance(problems, list) and problems:
        return [_problem_line(problem) for problem in problems[:MAX_DETAIL_LINES]]
    lines = []
    for key, value in details.items():
        if value in (None, "", [], {}):
            continue
        lines.append(f"{key}: {_short(value)}")
    return lines[:MAX_DETAIL_LINES]


def remedy_line(error: GoldfishError, tools: frozenset[str]) -> str:
    """The remedy in command-line terms."""
    if error.code == GATE_CODE:
        return (
            "Finalize each run above (the value is the run's primary metric; --outcome success|partial|"
            "miss|unknown), run with --finalize auto in CI, or set memory.finalization_gate: false in "
            "goldfish.yaml."
        )
    return in_cli_terms(error.remedy, tools) if error.remedy else ""


def render(error: GoldfishError, out: TextIO) -> int:
    """Print ``error`` for a person and return the exit code it calls for."""
    tools = tool_names()
    print(f"error [{error.code}]: {in_cli_terms(error.message, tools)}", file=out)
    for line in detail_lines(error):
        print(f"  {in_cli_terms(line, tools)}", file=out)
    remedy = remedy_line(error, tools)
    if remedy:
        print(f"To fix: {remedy}", file=out)
    return exit_code_for(error.code)
