"""The base of the models services return (and tools publish as results): built at first use.

A pydantic model builds its validator and serializer when its class is defined, unless it defers
that to its first use. Dozens of result models are imported when the MCP server starts, and
most are never used in a short session; deferring them keeps the server's cold start close to
the bare SDK's (``bench/mcp_cold_start.py``). Modules of result models import this class as
``BaseModel``, so their class definitions read as plain pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResultModel(BaseModel):
    """A pydantic model whose validator is built when it is first used."""

    model_config = ConfigDict(defer_build=True)
