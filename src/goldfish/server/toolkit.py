"""The tool boundary: registration, structured errors, audit rows and STATE.md refresh.

Every tool goes through :meth:`ToolRegistry.tool`, so each call either returns its typed
result or ``{"success": false, "error": {...}}`` with ``isError: true``; nothing raises past
this module, and every state-changing call leaves exactly one audit row.

An error travels as one JSON text block and no structured content: TypeScript clients check
any structured content against the tool's output schema, error or not, and would turn the error
shape into a protocol error that hides the code and remedy from the model.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args

from mcp.server.context import CallNext, ServerMiddleware, ServerRequestContext
from mcp.server.context import HandlerResult as MiddlewareResult
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from goldfish.errors import (
    GoldfishError,
    InternalError,
    InvalidArgumentError,
    UnknownToolError,
    did_you_mean,
    disk_fault,
    suggestion_suffix,
)
from goldfish.server.app_state import GoldfishApp
from goldfish.server.schemas import published_tool
from goldfish.validation import reason as check_reason
from goldfish.validation import redact

if TYPE_CHECKING:
    from goldfish.context import ServerContext

log = logging.getLogger("goldfish.server")

MAX_AUDIT_STRING = 500
MAX_PROBLEMS = 20  # argument problems reported per call
_F = TypeVar("_F", bound=Callable[..., Any])

# A mapping of names to JSON values (config overrides, source metadata): its input schema says so
# instead of a bare object.
JsonMapping = dict[str, str | int | float | bool | list[Any] | dict[str, Any] | None]


@dataclass(frozen=True)
class ReasonCheck:
    """How the boundary checks a tool's ``reason`` argument (metadata of the ``reason`` annotation).

    Attributes:
        required: every call that changes something needs one (a call that only reads, see
            ``reads_when``, needs none); otherwise it is checked only when given.
    """

    required: bool


# A tool's ``reason`` is checked here, once, before the tool runs (a sentence of 15+ characters:
# REASON_REQUIRED otherwise); the tool and the services it calls take it as checked. Reasons a
# service parses as part of a request other faces send too (run, resume_pipeline, finalize_run)
# are typed without this and checked by that service.
Reason = Annotated[str, ReasonCheck(required=True)]
ChangeReason = Annotated[str | None, ReasonCheck(required=True)]  # none needed by the reading actions
OptionalReason = Annotated[str | None, ReasonCheck(required=False)]


def reason_check(fn: Callable[..., Any]) -> ReasonCheck | None:
    """The :class:`ReasonCheck` of ``fn``'s ``reason`` parameter, if it declares one."""
    metadata = getattr(fn.__annotations__.get("reason"), "__metadata__", ())  # Annotated's extras
    return next((item for item in metadata if isinstance(item, ReasonCheck)), None)


class ToolResult(BaseModel):
    """Base of every successful tool result."""

    # Each result model's validator is built at its tool's first call, not at server start.
    model_config = ConfigDict(defer_build=True)

    success: bool = Field(True, description="True: the call did what it says.")


def error_result(error: GoldfishError) -> CallToolResult:
    """The failure every tool returns: ``isError`` and the error JSON as text, no structured content."""
    payload = {"success": False, "error": error.to_dict()}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(payload, default=str))], is_error=True
    )


def unshaped_error(result: MiddlewareResult) -> str | None:
    """The text of an error result the SDK built itself (not :func:`error_result`), else None.

    ``result`` is the wire form a handler chain returns (a dict with camelCase keys).
    """
    if isinstance(result, BaseModel):
        result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if not isinstance(result, Mapping) or result.get("isError") is not True:
        return None
    blocks = [b for b in result.get("content") or [] if isinstance(b, Mapping) and b.get("type") == "text"]
    text = " ".join(str(b.get("text", "")) for b in blocks)
    try:
        payload = json.loads(text) if len(blocks) == 1 else None
    except ValueError:
        payload = None
    shaped = (
        isinstance(payload, dict)
        and payload.get("success") is False
        and isinstance(payload.get("error"), dict)
    )
    return None if shaped else text


def plain(value: Any) -> Any:
    """A typed argument (a results spec, a reason) as the JSON a client sent; anything else as it is."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def plain_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Every argument as :func:`plain` makes it."""
    return {key: plain(value) for key, value in arguments.items()}


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
        self._reason_checks: dict[str, ReasonCheck] = {}

    def tool(
        self,
        *,
        title: str,
        read_only: bool,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = False,
        audited: bool | None = None,
        reads_when: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> Callable[[_F], _F]:
        """Register a tool; state-changing tools (``read_only=False``) are audited by default.

        Args:
            title: Display name, sent as the tool's top-level ``title``.
            read_only: The tool changes nothing (``readOnlyHint``).
            destructive: It deletes, hides or overwrites something (``destructiveHint``).
            idempotent: Repeating the call with the same arguments changes nothing more.
            open_world: It can reach a cloud or run user code (``openWorldHint``).
            audited: Override the default (audited unless read-only).
            reads_when: Marks the calls of a state-changing tool that only read (e.g.
                action='list'): those are neither audited nor followed by a STATE.md refresh.
        """

        def decorator(fn: _F) -> _F:
            audit = (not read_only) if audited is None else audited
            if reads_when is not None:
                self._reads_when[fn.__name__] = reads_when
            check = reason_check(fn)
            if check is not None:
                self._reason_checks[fn.__name__] = check
            wrapped = self._wrap(fn, audit=audit, refresh_state=not read_only)
            annotations = ToolAnnotations(
                read_only_hint=read_only,
                destructive_hint=destructive,
                idempotent_hint=idempotent,
                open_world_hint=open_world,
            )
            tool = published_tool(
                fn,
                wrapped,
                name=fn.__name__,
                title=title,
                description=inspect.cleandoc(fn.__doc__ or ""),
                annotations=annotations,
            )
            self.tools[fn.__name__] = tool
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

    def checked_reason(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` with the reason checked as the tool declares (see :class:`ReasonCheck`).

        Raises:
            ReasonRequiredError: a reason is needed and missing or shorter than 15 characters.
        """
        check = self._reason_checks.get(name)
        value = arguments.get("reason")
        if check is None or (value is None and not check.required) or self.only_reads(name, arguments):
            return arguments
        return {**arguments, "reason": check_reason(value)}

    @staticmethod
    def _as_error(name: str, exc: Exception) -> GoldfishError:
        if isinstance(exc, GoldfishError):
            return exc
        disk = disk_fault(exc)
        if disk is not None:
            log.warning("tool %s stopped: %s", name, disk.details.get("cause"))
            return disk
        log.exception("tool %s failed unexpectedly", name)
        return _internal(name)

    def _wrap(self, fn: Callable[..., Any], *, audit: bool, refresh_state: bool) -> Callable[..., Any]:
        name = fn.__name__
        flags = {"audit": audit, "refresh_state": refresh_state}

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_boundary(**kwargs: Any) -> Any:
                started = time.perf_counter()
                workspace = self.audit_workspace(kwargs) if audit else None
                try:
                    result = await fn(**self.checked_reason(name, kwargs))
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
                result = fn(**self.checked_reason(name, kwargs))
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
                if key == "workspace" and context.workspace_rows.get(label) is not None:
                    return label
                mount = context.workspace_rows.mount_of_slot(label)
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
        arguments = plain_arguments(arguments)
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

    def call_middleware(self) -> ServerMiddleware[Any]:
        """MCP middleware: every tools/call failure reaches the client in the structured error shape.

        Before the call it answers an unknown tool name and arguments that do not fit the input
        schema; after it, any error result the SDK made itself (a result that failed its own
        output model) becomes ``INTERNAL``.
        """

        async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> MiddlewareResult:
            if ctx.method != "tools/call" or not isinstance(ctx.params, Mapping):
                return await call_next(ctx)
            name = ctx.params.get("name")
            tool = self.tools.get(name) if isinstance(name, str) else None
            if tool is None:
                return error_result(
                    UnknownToolError(
                        f"There is no tool named {str(name)[:100]!r}.",
                        details={
                            "tool": str(name)[:100],
                            "did_you_mean": did_you_mean(str(name)[:100], self.tools),
                        },
                    )
                )
            arguments = ctx.params.get("arguments") or {}
            failure = self._argument_error(tool, arguments)
            if failure is not None:
                if (
                    tool.name in self.audited
                    and isinstance(arguments, Mapping)
                    and not self.only_reads(tool.name, arguments)
                ):
                    self.record(tool.name, arguments, failure, 0.0)
                return error_result(failure)
            result = await call_next(ctx)
            stray = unshaped_error(result)
            if stray is not None:
                log.error("tool %s failed outside its own code: %s", tool.name, stray[:2000])
                return error_result(_internal(tool.name))
            return result

        return middleware

    @staticmethod
    def _argument_error(tool: Tool, arguments: Any) -> GoldfishError | None:
        """Unknown argument names and values that do not fit the input schema, as one error."""
        if not isinstance(arguments, Mapping):
            return InvalidArgumentError("Tool arguments must be an object.", details={"tool": tool.name})
        known = tool.parameters.get("properties", {})
        # A misspelt optional argument would otherwise be dropped without a word (list_runs(workspce=...)).
        unknown = [str(key)[:100] for key in arguments if key not in known][:MAX_PROBLEMS]
        problems = [
            {"field": key, "problem": "unknown argument" + suggestion_suffix(key, known)} for key in unknown
        ]
        try:
            tool.fn_metadata.validate_arguments(dict(arguments))
        except ValidationError as exc:
            model = tool.fn_metadata.arg_model
            for err in exc.errors()[:MAX_PROBLEMS]:
                loc = err["loc"]
                hint = ""
                if err["type"] == "extra_forbidden" and loc:
                    hint = suggestion_suffix(str(loc[-1])[:100], _field_names(model, loc[:-1]))
                field = ".".join(str(p) for p in loc)[:200] or "(arguments)"
                problems.append({"field": field, "problem": err["msg"] + hint})
        if not problems:
            return None
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        return InvalidArgumentError(
            f"Invalid arguments for {tool.name}: {summary}",
            details={"tool": tool.name, "problems": problems[:MAX_PROBLEMS]},
        )


def _field_names(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The field names of the typed argument at ``path`` (an error's location minus its last part).

    A location may name a union member by its model's name (``reason.StructuredReason.x``).
    """
    models = [model]
    for part in path:
        named = [m for m in models if m.__name__ == part]
        if named:
            models = named
            continue
        fields = [m.model_fields[str(part)] for m in models if str(part) in m.model_fields]
        models = [found for f in fields for found in _models_in(f.annotation)]
    return [name for m in models for name in m.model_fields]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _internal(tool: str) -> InternalError:
    return InternalError(f"{tool} failed unexpectedly; nothing more is known to the caller.")
