"""Bad input: every tool, driven through a real MCP session with hostile arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import structured
from tests.integration.bad_input.hostile_values import arguments_for, enum_values, valid_ish
from tests.integration.bad_input.sandbox_support import (
    EXPECTED_TOOLS,
    HUGE,
    Sandbox,
    Session,
    assert_initialize_elsewhere_refused,
    assert_structured,
    outside_state,
)

EXAMPLES_PER_ERA = 75


@settings(
    max_examples=EXAMPLES_PER_ERA,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_tool_when_given_hostile_arguments_returns_structured_result(
    session: Session, data: st.DataObject
) -> None:
    assert set(session.schemas) >= EXPECTED_TOOLS
    box = session.box
    before, before_outside = box.snapshot(), outside_state()
    tool = data.draw(st.sampled_from(sorted(session.schemas)), label="tool")
    arguments = data.draw(arguments_for(box, session.schemas[tool]), label="arguments")

    payload = assert_structured(tool, arguments, session.call(tool, arguments))

    if tool == "initialize_project":
        assert_initialize_elsewhere_refused(box, arguments, payload)
    assert structured(session.call("status", {}))["success"] is True
    assert box.snapshot() == before
    assert outside_state() == before_outside


# ---------------------------------------------------------------------------------------------
# Deterministic sweep: every tool, every hostile profile, at least once
# ---------------------------------------------------------------------------------------------

PROFILES: dict[str, Any] = {
    "huge string": HUGE,
    "NUL bytes": "ws1\x00../../etc/passwd",
    "traversal": "../../etc/passwd",
    "absolute path": "/tmp/x",
    "unicode": "\u202e名前\U0001f41f",
    "list instead of string": ["w1", "../"],
    "dict instead of string": {"path": "/etc"},
    "negative number": -1,
    "huge number": 2**70,
    "null": None,
}


def sweep_cases(box: Sandbox, schema: dict[str, Any]) -> Iterator[dict[str, Any] | None]:
    """No arguments; every parameter hostile at once; then one hostile parameter among plausible ones."""
    properties: dict[str, Any] = schema.get("properties", {})
    base = {
        name: ([*valid_ish(box).get(name, []), *enum_values(prop)] or ["x"])[0]
        for name, prop in properties.items()
    }
    yield None
    yield {"unknown_extra": HUGE, "../x": {"path": "/etc"}}
    for value in PROFILES.values():
        yield {**dict.fromkeys(properties, value), "unknown_extra": value}
        for name in properties:
            yield {**base, name: value}


def test_every_tool_when_each_parameter_gets_each_hostile_value_returns_structured_result(
    session: Session,
) -> None:
    assert set(session.schemas) >= EXPECTED_TOOLS
    box = session.box
    before, before_outside = box.snapshot(), outside_state()

    for tool, schema in sorted(session.schemas.items()):
        for arguments in sweep_cases(box, schema):
            payload = assert_structured(tool, arguments or {}, session.call(tool, arguments))
            if tool == "initialize_project" and arguments:
                assert_initialize_elsewhere_refused(box, arguments, payload)
        assert structured(session.call("status", {}))["success"] is True

    assert box.snapshot() == before
    assert outside_state() == before_outside


def test_initialize_project_when_server_has_a_project_refuses_another_root(session: Session) -> None:
    box = session.box
    before_outside = outside_state()
    for root in (str(box.other_root), "../elsewhere", "/tmp/x", "~/x", str(box.root / "nested")):
        arguments = {"project_name": "other", "project_root": root, "from_existing": False}
        payload = assert_structured(
            "initialize_project", arguments, session.call("initialize_project", arguments)
        )
        assert payload["success"] is False
        assert payload["error"]["code"] == "PROJECT_EXISTS"
    assert not box.other_root.exists()
    assert not (box.cwd.parent / "elsewhere").exists()
    assert not (box.root / "nested").exists()
    assert outside_state() == before_outside
