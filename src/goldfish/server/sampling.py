"""The connected client's own model as a pre-run reviewer, through MCP sampling.

A tool that starts a review runs its service call in a worker thread; :class:`SamplingReviewer`
asks the client from there (``sampling/createMessage`` on the calling session) and waits at most
the review timeout. No key is needed: the agent's own model answers.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import anyio
import anyio.from_thread
from mcp import MCPDeprecationWarning, types
from mcp.server.mcpserver import Context

from goldfish.svs.anthropic_review import AnthropicReviewer
from goldfish.svs.review import ModelReviewer

MAX_TOKENS = 2000


class SamplingReviewer:
    """Asks the client that called the tool (when it declared the sampling capability)."""

    name: Literal["client_sampling"] = "client_sampling"

    def __init__(self, ctx: Context[Any, Any]):
        self._ctx = ctx

    def unavailable(self) -> str | None:
        """Why the client cannot be asked: it did not offer sampling."""
        capabilities = self._ctx.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            return "the connected client does not offer sampling"
        return None

    def ask(self, system: str, prompt: str, timeout: float) -> str:
        """The client model's text answer (called from a worker thread)."""
        return anyio.from_thread.run(self._ask, system, prompt, timeout)

    async def _ask(self, system: str, prompt: str, timeout: float) -> str:
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
        with anyio.fail_after(timeout), warnings.catch_warnings():
            # Sampling is marked deprecated in the newest protocol revision; clients still offer it.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await self._ctx.session.create_message(
                [message], max_tokens=MAX_TOKENS, system_prompt=system, temperature=0
            )
        content = result.content
        blocks = content if isinstance(content, list) else [content]
        return "".join(block.text for block in blocks if isinstance(block, types.TextContent))


def reviewers_for(ctx: Context[Any, Any], model: str) -> list[ModelReviewer]:
    """Who may review, in order: the client's model, then the Anthropic API."""
    return [SamplingReviewer(ctx), AnthropicReviewer(model)]
