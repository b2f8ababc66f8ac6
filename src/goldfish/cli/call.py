"""Commands that call MCP tools in-process: ``goldfish call TOOL`` and the helpers other commands use.

A command calls a tool through a real MCP client session on an in-memory server built by
``server_for``: the arguments pass the same input-schema check, the call leaves the same audit
row, and the result (or error) is the same JSON an agent gets. That keeps one implementation
behind the CLI and the tools.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from goldfish.errors import GoldfishError, InternalError, InvalidArgumentError


class ToolCallError(GoldfishError):
    """A tool answered with an error: carries that error's own code, details and remedy."""

    def __init__(self, payload: dict[str, Any]):
        found = payload.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        super().__init__(
            str(error.get("message", "The tool call failed.")),
            details=error.get("details") if isinstance(error.get("details"), dict) else {},
            remedy=str(error.get("remedy") or ""),
        )
        self.code = str(error.get("code", InternalError.code))
        self.payload = payload


class ProgressPrinter:
    """A tool's progress notifications on stderr: one line rewritten on a terminal, else plain lines."""

    def __init__(self, out: TextIO | None = None):
        self._out = out or sys.stderr
        self._live = self._out.isatty()
        self._started = time.monotonic()
        self._last = ""

    def show(self, done: float, total: float | None, message: str) -> None:
        """Show one notification (repeats of the same message are dropped)."""
        steps = f"{done:g}/{total:g} " if total else ""
        line = f"[{time.monotonic() - self._started:5.1f}s] {steps}{message}"
        if message == self._last:
            return
        self._last = message
        if self._live:
            self._out.write(f"\r\x1b[2K{line[: shutil.get_terminal_size().columns - 1]}")
        else:
            self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """End the live line."""
        if self._live and self._last:
            self._out.write("\n")
            self._out.flush()


class ToolCaller:
    """Calls tools of the project's MCP server within one client session (see :func:`tool_caller`)."""

    def __init__(self, portal: Any, client: Any):
        self._portal = portal
        self._client = client

    def payload(
        self, tool: str, arguments: dict[str, Any], progress: ProgressPrinter | None = None
    ) -> dict[str, Any]:
        """The result JSON of one call, success or error, exactly as an MCP client sees it."""
        from mcp.types import TextContent  # noqa: PLC0415

        printer = progress

        async def report(progress: float, total: float | None, message: str | None) -> None:
            if printer is not None:
                printer.show(progress, total, message or "")

        result = self._portal.call(lambda: self._client.call_tool(tool, arguments, progress_callback=report))
        if progress is not None:
            progress.close()
        if result.structured_content is not None and not result.is_error:
            return dict(result.structured_content)
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        try:
            data = json.loads(texts[0]) if texts else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        message = " ".join(texts)[:2000] or "The tool returned no result."
        return {"success": False, "error": {"code": InternalError.code, "message": message, "details": {}}}

    def call(
        self, tool: str, arguments: dict[str, Any], progress: ProgressPrinter | None = None
    ) -> dict[str, Any]:
        """The result JSON of a successful call.

        Raises:
            ToolCallError: the tool answered with an error.
        """
        data = self.payload(tool, arguments, progress)
        if data.get("success") is False:
            raise ToolCallError(data)
        return data


@contextmanager
def tool_caller(project: str | None) -> Iterator[ToolCaller]:
    """A :class:`ToolCaller` on the project ``--project``/``$GOLDFISH_PROJECT``/the nearest names."""
    from anyio.from_thread import start_blocking_portal  # noqa: PLC0415
    from mcp import Client  # noqa: PLC0415

    from goldfish.project import discover_project  # noqa: PLC0415
    from goldfish.server.app import build_server  # noqa: PLC0415
    from goldfish.server.app_state import GoldfishApp  # noqa: PLC0415

    root: Path = discover_project(project)
    app = GoldfishApp(root)
    failure: Exception | None = None
    try:
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(Client(build_server(app))) as client,
        ):
            try:
                yield ToolCaller(portal, client)
            except Exception as exc:  # raised below, not through the session's task group
                failure = exc
    finally:
        app.close()
    if failure is not None:
        raise failure


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"--args is not valid JSON: {exc}.",
            details={"field": "--args"},
            remedy='Pass a JSON object, e.g. --args \'{"workspace": "w1"}\'.',
        ) from None
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            "--args must be a JSON object of argument names to values.",
            details={"field": "--args"},
            remedy='Pass a JSON object, e.g. --args \'{"workspace": "w1"}\'.',
        )
    return value


def cmd_call(args: argparse.Namespace) -> int:
    """Call any tool and print its result JSON (exit 0 on success, else the error's exit code)."""
    from goldfish.cli.errors import exit_code_for  # noqa: PLC0415

    arguments = _arguments(args.args)
    with tool_caller(args.project) as caller:
        payload = caller.payload(args.tool, arguments)
    print(json.dumps(payload, indent=2))
    if payload.get("success") is False:
        error = payload.get("error") or {}
        return exit_code_for(str(error.get("code", "")))
    return 0


def add_call_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``goldfish call TOOL [--args JSON]``."""
    call = sub.add_parser(
        "call",
        help="call any MCP tool; prints the same result JSON as MCP",
        description="Exit codes: 0 success, 4 the finalization gate, 2 any other error.",
    )
    call.add_argument("tool", help="tool name, e.g. list_workspaces")
    call.add_argument("--args", default="{}", metavar="JSON", help="the arguments as a JSON object")
    call.add_argument("--project", help="project folder (default: $GOLDFISH_PROJECT or search upward)")
    call.set_defaults(func=cmd_call, json=True)  # its own errors (bad --args, no project) as JSON too
