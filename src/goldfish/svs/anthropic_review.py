"""The Anthropic API as a pre-run reviewer: used when the client cannot sample and a key is set.

The ``anthropic`` package is an optional extra (``pip install 'goldfish[review]'``), imported only
when a review actually asks it.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

KEY_VARIABLE = "ANTHROPIC_API_KEY"
MAX_TOKENS = 2000


class AnthropicReviewer:
    """Asks an Anthropic model through the API with the key from the server's environment."""

    name: Literal["anthropic_api"] = "anthropic_api"

    def __init__(self, model: str, environ: dict[str, str] | None = None):
        self._model = model
        self._environ = environ if environ is not None else dict(os.environ)

    def unavailable(self) -> str | None:
        """Why the API cannot be used: no key, or the package is not installed."""
        if not self._environ.get(KEY_VARIABLE):
            return f"{KEY_VARIABLE} is not set"
        if importlib.util.find_spec("anthropic") is None:
            return "the anthropic package is not installed (pip install 'goldfish[review]')"
        return None

    def ask(self, system: str, prompt: str, timeout: float) -> str:
        """The model's text answer."""
        import anthropic  # noqa: PLC0415 - optional extra, loaded only for a review

        client: Any = anthropic.Anthropic(api_key=self._environ[KEY_VARIABLE], timeout=timeout, max_retries=0)
        reply = client.messages.create(
            model=self._model,
            max_tokens=MAX_TOKENS,
            system=system,
            messages=[{"role": "user", "content": prompt}],
        )
        return "".join(getattr(block, "text", "") for block in reply.content)
