"""The tool boundary: registration, structured errors, audit rows and STATE.md refresh.

Every tool goes through :meth:`ToolRegistry.tool`, so each call either returns its typed
result or ``{"success": false, "error": {...}}`` with ``isError: true``; nothing raises past
this module, and every state-changing call leaves exactly one audit row.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mcp.server.context import CallNext, ServerMiddleware, ServerRequestContext
from mcp.server.context import HandlerResult as MiddlewareResult
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from goldfish.context import ServerContext
from goldfish.errors import GoldfishError, InternalError, InvalidArgumentError, disk_fault
from goldfish.server.app_state import GoldfishApp
from goldfish.validation import redact

log = logging.getLogger("goldfish.server")

MAX_AUDIT_STRING = 500
_F = TypeVar("_F", bound=Callable[..., Any])


class ToolResult(BaseModel):
    """Base of every successful tool result."""

    success: bool = Field(True, description="True: the call did what it says.")


def error_result(error: GoldfishError) -> CallToolResult:
    """The structured failure every tool returns for a user error."""
    payload = {"success": False, "error": error.to_dict()}
    text = json.dumps(payload, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=payload, is_error=True
    )


def _audit_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    def clip(value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_AUDIT_STRING:
            return value[:MAX_AUDIT_STRING] + f"... ({len(value)} chars)"
        if isinstance(value, dict):
            return {str(k)[:100]: clip(v) for k, v in list(value.items())[:50]}
        if isinstance(value, list):
            return [clip(v) for v in value[:50]]
        return value

    return clip(redact(dict(arguments)))  # type: ignore[no-any-return]


class ToolRegistry:
    """Collects Goldfish tools and wraps each with the shared boundary behaviour."""

    def __init__(self, app: GoldfishApp):
        self.app = app
        self.tools: dict[str, Tool] = {}
        self.audited: set[str] = set()
        self._reads_when: dict[str, Callable[[Mapping[str, Any]], bool]] = {}

    def tool(
        self,
        *,
        read_only: bool,
        destructive: bool = False,
        idempotent: bool = False,
        title: str | None = None,
        audited: bool | None = None,
        reads_when: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> Callable[[_F], _F]:
        """Register a tool; state-changing tools (``read_only=False``) are audited by default.

        ``reads_when`` marks the calls of a state-changing tool that only read (e.g. action='list'):
        those are neither audited nor followed by a STATE.md refresh.
        """

        def decorator(fn: _F) -> _F:
            audit = (not read_only) if audited is None else audited
            if reads_when is not None:
                self._reads_when[fn.__name__] = reads_when
            wrapped = self._wrap(fn, audit=audit, refresh_state=not read_only)
            annotations = ToolAnnotations(
                title=title,
                read_only_hint=read_only,
                destructive_hint=None if read_only else destructive,
                idempotent_hint=idempotent,
                open_world_hint=False,
            )
            self.tools[fn.__name__] = Tool.from_function(wrapped, name=fn.__name__, annotations=annotations)
            if audit:
                self.audited.add(fn.__name__)
            return fn

        return decorator

    def _finish(
        self,
        name: str,
        kwargs: dict[str, Any],
        result: Any,
        error: GoldfishError | None,
        started: float,
        workspace: str | None,
        *,
        audit: bool,
        refresh_state: bool,
    ) -> Any:
        """Audit the call, refresh STATE.md after a change, and shape an error result."""
        if self.only_reads(name, kwargs):
            return error_result(error) if error is not None else result
        if audit:
            self.record(name, kwargs, error, time.perf_counter() - started, workspace)
        if error is not None:
            return error_result(error)
        if refresh_state:
            self.app.refresh_state()
        return result

    def only_reads(self, name: str, arguments: Mapping[str, Any]) -> bool:
        """True when this call of a state-changing tool only reads (see ``reads_when``)."""
        predicate = self._reads_when.get(name)
        return predicate is not None and bool(predicate(arguments))

    @staticmethod
    def _as_error(name: str, exc: Exception) -> GoldfishError:
        if isinstance(exc, GoldfishError):
            return exc
        disk = disk_fault(exc)
        if disk is not None:
            log.warning("tool %s stopped: %s", name, disk.details.get("cause"))
            return disk
        log.exception("tool %s failed unexpectedly", name)
        return InternalError(f"{name} failed unexpectedly; nothing more is known to the caller.")

    def _wrap(self, fn: Callable[..., Any], *, audit: bool, refresh_state: bool) -> Callable[..., Any]:
        name = fn.__name__
        flags = {"audit": audit, "refresh_state": refresh_state}

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_boundary(**kwargs: Any) -> Any:
                started = time.perf_counter()
                workspace = self.audit_workspace(kwargs) if audit else None
                try:
                    result = await fn(**kwargs)
                except Exception as exc:
                    return self._finish(
                        name, kwargs, None, self._as_error(name, exc), started, workspace, **flags
                    )
                return self._finish(name, kwargs, result, None, started, workspace, **flags)

            return async_boundary

        @functools.wraps(fn)
        def boundary(**kwargs: Any) -> Any:
            started = time.perf_counter()
            # Resolved before the call: hibernate empties the slot it names.
            workspace = self.audit_workspace(kwargs) if audit else None
            try:
                result = fn(**kwargs)
            except Exception as exc:
                return self._finish(
                    name, kwargs, None, self._as_error(name, exc), started, workspace, **flags
                )
            return self._finish(name, kwargs, result, None, started, workspace, **flags)

        return boundary

    def audit_workspace(self, arguments: Mapping[str, Any]) -> str | None:
        """The workspace a call is about; a slot argument stands for the workspace mounted in it."""
        context = self._audit_context()
        for key in ("workspace", "name", "slot"):
            value = arguments.get(key)
            if not isinstance(value, str):
                continue
            label = value[:100]
            if context is None or key == "name" or label not in context.config.slots:
                return label
            try:
                if key == "workspace" and context.core.rows.get(label) is not None:
                    return label
                mount = context.core.rows.mount_of_slot(label)
            except Exception:
                log.exception("could not resolve slot %s for the audit row", label)
                return label
            return mount.workspace if mount is not None else label
        return self._workspace_of_run(context, arguments)

    @staticmethod
    def _workspace_of_run(context: ServerContext | None, arguments: Mapping[str, Any]) -> str | None:
        """The workspace behind a run or record ref (run_id, stage_run_id, record_or_run_id, ref)."""
        if context is None:
            return None
        for key in ("run_id", "record_or_run_id", "stage_run_id", "pipeline_run_id", "ref"):
            value = arguments.get(key)
            if isinstance(value, str) and value and not value.startswith("@"):
                try:
                    return context.records.resolve(value).workspace
                except Exception:  # an unknown ref: the call itself reports it
                    return None
        return None

    def _audit_context(self) -> ServerContext | None:
        """The project's context, waiting for it while it still loads beside the handshake."""
        context = self.app.loaded_context()
        if context is None and self.app.root is not None:
            try:
                context = self.app.context
            except Exception:  # a project that cannot load has nowhere to audit to
                return None
        return context

    def record(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        error: GoldfishError | None,
        seconds: float,
        workspace: str | None = None,
    ) -> None:
        """Write the audit row of one state-changing call (best effort: never masks the result)."""
        context = self._audit_context()
        if context is None:
            return
        if workspace is None:
            workspace = self.audit_workspace(arguments)
        reason = arguments.get("reason") or arguments.get("message")
        reason_text = reason if isinstance(reason, str) else (json.dumps(reason)[:2000] if reason else None)
        try:
            context.audit.record(
                tool,
                workspace,
                reason_text[:2000] if reason_text else None,
                _audit_arguments(arguments),
                "error" if error else "success",
                error.code if error else None,
                seconds * 1000,
            )
        except Exception:
            log.exception("could not write the audit row of %s", tool)

    def argument_middleware(self) -> ServerMiddleware[Any]:
        """MCP middleware that answers argument type errors with the structured error shape."""

        async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> MiddlewareResult:
            if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
                tool = self.tools.get(str(ctx.params.get("name")))
                arguments = ctx.params.get("arguments") or {}
                if tool is not None:
                    failure = self._argument_error(tool, arguments)
                    if failure is not None:
                        if (
                            tool.name in self.audited
                            and isinstance(arguments, Mapping)
                            and not self.only_reads(tool.name, arguments)
                        ):
                            self.record(tool.name, arguments, failure, 0.0)
                        return error_result(failure)
            return await call_next(ctx)

        return middleware

    @staticmethod
    def _argument_error(tool: Tool, arguments: Any) -> GoldfishError | None:
        if not isinstance(arguments, Mapping):
            return InvalidArgumentError("Tool arguments must be an object.", details={"tool": tool.name})
        try:
            tool.fn_metadata.validate_arguments(dict(arguments))
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in err["loc"]) or "(arguments)", "problem": err["msg"]}
                for err in exc.errors()[:20]
            ]
            summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
            return InvalidArgumentError(
                f"Invalid arguments for {tool.name}: {summary}",
                details={"tool": tool.name, "problems": problems},
            )
        return None
