"""A problem found in a config or pipeline file.

Its own module: ``validate_config``'s result model names it, and the MCP server imports that at
start, without the config parser and PyYAML.
"""

from __future__ import annotations

from pydantic import BaseModel


class ConfigProblem(BaseModel):
    """One problem found in a config or pipeline file."""

    path: str
    line: int | None
    key: str
    message: str
    stage: str | None = None
