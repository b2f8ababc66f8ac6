"""Writes the JSON Schemas of goldfish.yaml and pipeline.yaml (generated from the pydantic models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from goldfish.config import config_json_schema
from goldfish.pipelines.models import pipeline_json_schema

SCHEMA_FILES = {
    "goldfish.schema.json": config_json_schema,
    "pipeline.schema.json": pipeline_json_schema,
}


def render_schema(schema: dict[str, Any]) -> str:
    """Stable text form of a schema (sorted keys, trailing newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema file into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in SCHEMA_FILES.items():
        path = folder / name
        path.write_text(render_schema(build()), encoding="utf-8")
        written.append(path)
    return written
