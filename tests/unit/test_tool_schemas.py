"""The input schemas tools/list publishes: compact, self-contained, and as strict as the models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from goldfish.server.schemas import compact_input


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    kind: Literal["a", "b"]


class Arguments(BaseModel):
    part: Part
    maybe: Part | None = None
    note: str | None = None
    either: int | str = 0
    free: dict[str, Any] | None = None


def test_compact_input_inlines_definitions_and_drops_generated_titles_but_not_a_field_named_title() -> None:
    schema = compact_input(Arguments.model_json_schema())

    assert "$defs" not in schema and "title" not in schema
    part = schema["properties"]["part"]
    assert part == {
        "additionalProperties": False,
        "properties": {"title": {"type": "string"}, "kind": {"enum": ["a", "b"], "type": "string"}},
        "required": ["title", "kind"],
        "type": "object",
    }
    assert "$ref" not in str(schema)


def test_compact_input_publishes_an_optional_value_as_its_plain_type_left_out_for_none() -> None:
    schema = compact_input(Arguments.model_json_schema())

    assert schema["properties"]["note"] == {"type": "string"}
    assert schema["properties"]["maybe"]["properties"]["kind"]["enum"] == ["a", "b"]
    assert schema["properties"]["free"] == {"type": "object"}
    assert schema["required"] == ["part"]


def test_compact_input_merges_a_choice_of_bare_types_into_a_type_list_and_keeps_defaults() -> None:
    schema = compact_input(Arguments.model_json_schema())

    assert schema["properties"]["either"] == {"type": ["integer", "string"], "default": 0}
