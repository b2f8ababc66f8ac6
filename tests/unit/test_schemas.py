"""The committed JSON Schemas and the example config match the pydantic models."""

from __future__ import annotations

from pathlib import Path

import pytest

from goldfish.config import parse_config
from goldfish.schemas import SCHEMA_FILES, render_schema

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_when_models_change_must_be_regenerated(name: str) -> None:
    committed = (REPO / "schema" / name).read_text(encoding="utf-8")
    assert committed == render_schema(SCHEMA_FILES[name]()), f"run `make schema`: schema/{name} drifted"


def test_example_config_when_parsed_is_valid_and_sets_every_section() -> None:
    text = (REPO / "goldfish.yaml.example").read_text(encoding="utf-8")
    config = parse_config(text, "goldfish.yaml.example")
    for section in ("defaults", "storage", "gce", "docker", "svs"):
        assert f"\n{section}:" in text, f"goldfish.yaml.example lacks the {section} section"
    assert config.gce.warm_pool.max_instances >= 0
