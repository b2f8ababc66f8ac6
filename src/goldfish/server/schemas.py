"""What tools/list publishes: compact input schemas and no output schemas.

Every agent session pays for tools/list, and the whole list must stay under 40 KB (spec: tools.md,
measured by ``bench/tools_list.py``). Measured on the 44 tools of this build, as compact JSON:
the schemas pydantic generates came to 140 KB (output schemas alone 101 KB); compact input
schemas with the output schemas trimmed to top-level keys and types came to 40.5 KB; with no
output schemas, 33.9 KB. So:

- input schemas keep everything a caller needs (types, enums, bounds, defaults, descriptions)
  but lose pydantic's generated ``title`` on every property, ``additionalProperties: true``
  (the default) and ``$defs``/``$ref`` (each definition is inlined where it is used, which also
  suits clients that do not resolve references); an optional parameter (``X | None = None``) is
  published as plain ``X``: leave it out for "none" (the server still accepts an explicit null);
- tool modules do not use ``from __future__ import annotations``: the SDK reads every tool's
  signature several times at start-up, and string annotations would be evaluated each time;
- no output schema is published. Agent CLIs do not show output schemas to their model, the
  tool descriptions say what comes back, and the full list of tools in the spec (about 50) must
  fit the same 40 KB. Every success still carries its result as structured content (and the
  same JSON as text), checked against the tool's full result model before it is sent.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult
from pydantic import BaseModel

_REF_PREFIX = "#/$defs/"
_DROPPED = {"title"}


class PublishedTool(Tool):
    """A tool as tools/list shows it: its output model is used for results, not published."""

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """None: see the module docstring."""
        return None


# Stands in for the output schema that is never published: with it set, the SDK checks results
# against the result model as before but does not derive a JSON schema for it at start-up (that
# derivation was half of building the server; see bench/mcp_cold_start.py).
UNPUBLISHED_OUTPUT: dict[str, Any] = {"type": "object"}


def published_tool(fn: Callable[..., Any], wrapped: Callable[..., Any], **options: Any) -> Tool:
    """The tool for ``wrapped`` (the boundary around ``fn``) as tools/list shows it.

    Its input schema is compacted; its results are checked against ``fn``'s result model.
    """
    model = result_model(fn)
    tool = PublishedTool.from_function(wrapped, structured_output=False if model else None, **options)
    if model is not None:
        tool.fn_metadata = FuncMetadata(
            arg_model=tool.fn_metadata.arg_model, output_model=model, output_schema=UNPUBLISHED_OUTPUT
        )
    tool.parameters = compact_input(tool.parameters)
    return tool


def result_model(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """The model ``fn``'s structured result is checked against.

    That is its return type, or ``M`` of ``Annotated[CallToolResult, M]``; None for anything else
    (left to the SDK).
    """
    hint = fn.__annotations__.get("return")
    if isinstance(hint, str):  # a module with postponed annotations (tools/ modules avoid them: see below)
        hint = inspect.signature(fn, eval_str=True).return_annotation
    if get_origin(hint) is Annotated:
        base, *extra = get_args(hint)
        hint = extra[0] if isinstance(base, type) and issubclass(base, CallToolResult) and extra else None
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def compact_input(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without generated titles, default ``additionalProperties`` or references."""
    defs = schema.get("$defs", {})
    inlined = _inline({k: v for k, v in schema.items() if k != "$defs"}, defs, ())
    compacted: dict[str, Any] = _compact(inlined)
    return compacted


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """``node`` with every local ``$ref`` replaced by its definition (a cycle becomes an object)."""
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        name = ref.removeprefix(_REF_PREFIX)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if name in seen or name not in defs:
            return {"type": "object", **siblings}
        return {**_inline(defs[name], defs, (*seen, name)), **_inline(siblings, defs, seen)}
    return {key: _inline(value, defs, seen) for key, value in node.items()}


def _compact(node: Any) -> Any:
    if isinstance(node, list):
        return [_compact(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = _without_null_default(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key, value) in (("additionalProperties", True), ("items", {})):
            continue
        if key == "properties" and isinstance(value, dict):  # keys here are names, not keywords
            out[key] = {name: _compact(prop) for name, prop in value.items()}
        else:
            out[key] = _compact(value)
    return _type_list(out)


def _type_list(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf`` of bare types (``{"type": "string"}``, ...) as one ``type`` list."""
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and all(set(b) == {"type"} for b in branches)) or "type" in node:
        return node
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {"type": [b["type"] for b in branches], **rest}


def _without_null_default(node: dict[str, Any]) -> dict[str, Any]:
    """An optional value (``X | None = None``) published as plain ``X``: leave it out for "none".

    The server still accepts an explicit null; the schema just does not advertise it.
    """
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and "default" in node and node["default"] is None):
        return node
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) == len(branches):
        return node
    rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
    return {**kept[0], **rest} if len(kept) == 1 else {"anyOf": kept, **rest}
