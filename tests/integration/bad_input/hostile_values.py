"""Hostile argument values for every tool's schema: hypothesis strategies and fixed profiles."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.conftest import LONG_REASON
from tests.integration.bad_input.sandbox_support import HUGE, Sandbox

# ---------------------------------------------------------------------------------------------
# Argument generation
# ---------------------------------------------------------------------------------------------


def hostile_strings(box: Sandbox) -> list[str]:
    """Strings that try traversal, absolute paths, NUL, control characters and shell tricks."""
    return [
        "",
        " ",
        ".",
        "..",
        "../",
        "../../etc/passwd",
        "../../../",
        "../../../outside/secret.txt",
        "w1/../../..",
        "ws1/../../../outside",
        "/tmp/x",
        "/etc",
        "/etc/passwd",
        "/",
        "~",
        "~/x",
        str(box.outside),
        str(box.outside / "secret.txt"),
        str(box.other_root),
        str(box.top),
        "a\x00b",
        "\x00",
        "w1\x00",
        "ws1\x00/../x",
        "ws1\n",
        "ws1 ",
        "\t\r\n",
        "-rf",
        "--help",
        "$(touch pwned)",
        "`touch pwned`",
        "ws1; touch pwned",
        "file:///etc/passwd",
        "gs://bucket/x",
        "C:\\Windows\\System32",
        "\\\\server\\share",
        "ws1@../../x",
        "ws1@",
        "@",
        "@@",
        "v0",
        "v-1",
        "v99999999999999999999",
        "\u202eevil\u202c",
        "名前",
        "\U0001f41f",
        "e\u0301",
        "%2e%2e%2f",
        "NaN",
        HUGE,
        "w" * 64 + "x",
        LONG_REASON + "\x00",
    ]


def valid_ish(box: Sandbox) -> dict[str, list[Any]]:
    """Plausible values per parameter name, so deeper code paths run too."""
    names = ["ws1", "ws2", "fresh", "w1", "w2"]
    versions = ["v1", "v2", "1", "v999", "best"]
    text = [LONG_REASON, "tuned the learning rate"]
    return {
        "name": names,
        "workspace": names,
        "from_workspace": names,
        "slot": ["w1", "w2", "w3", "w9"],
        "version": versions,
        "from_version": versions,
        "to_version": versions,
        "tag": ["best", "t1", "v1"],
        "target": ["w1", "ws1", "ws1@v1", "ws2@v1", "w2"],
        "against": ["w1", "ws1@v1", "ws2", None],
        "reason": text,
        "message": text,
        "goal": text,
        "thought": text,
        "project_name": ["testproj", "other"],
        "project_root": [str(box.root), "../project", str(box.other_root), "../other"],
        "from_existing": [True, False],
        "include_pruned": [True, False],
        "include": [["pipeline"], []],
        "limit": [1, 20, 200],
        "offset": [0, 1, 5],
        "version_limit": [1, 10, 200],
        "version_offset": [0, 1],
        "run_id": ["stage-0123456789ab", "01HZZZZZZZZZZZZZZZZZZZZZZZ"],
    }


BIG_INTS = [-1, 0, -(2**31), 2**31, 2**63, -(2**63) - 1, 10**30, -(10**30), 2**200]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def enum_values(schema: Any) -> list[Any]:
    """Every ``enum``/``const`` value mentioned anywhere in a property schema."""
    found: list[Any] = []
    if isinstance(schema, dict):
        found.extend(schema.get("enum", []))
        if "const" in schema:
            found.append(schema["const"])
        for value in schema.values():
            found.extend(enum_values(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(enum_values(value))
    return found


def hostile_value(box: Sandbox) -> st.SearchStrategy[Any]:
    """Any hostile JSON value: crafted strings, mutations of them, wrong types, huge numbers."""
    crafted = st.sampled_from(hostile_strings(box))
    mixed = st.builds(lambda a, b: a + b, crafted, st.text(max_size=10)) | st.builds(
        lambda a, b: a + "/" + b, st.sampled_from(["w1", "ws1", "..", "/etc"]), crafted
    )
    wrong_types = st.one_of(
        st.lists(crafted, min_size=1, max_size=3),
        st.dictionaries(st.sampled_from(["path", "name", "../x"]), crafted, max_size=2),
        st.sampled_from(BIG_INTS),
        json_values,
    )
    return st.one_of(crafted, crafted, mixed, st.text(), wrong_types)


def plausible_value(box: Sandbox, name: str, schema: Any) -> st.SearchStrategy[Any]:
    """A value a careful caller might send for parameter ``name``."""
    choices = list(valid_ish(box).get(name, [])) + enum_values(schema)
    good = st.sampled_from(choices) if choices else st.text(max_size=20)
    if name in {"name", "workspace", "tag"}:
        return good | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,20}\Z")
    return good


@st.composite
def arguments_for(draw: st.DrawFn, box: Sandbox, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for one tool: some parameters hostile, the rest plausible or missing, plus extras.

    Mostly one or two parameters are hostile and the others plausible, so calls get past type
    checks into the services; sometimes every parameter is hostile or required ones are missing.
    """
    properties: dict[str, Any] = schema.get("properties", {})
    names = sorted(properties)
    hostile = draw(st.sets(st.sampled_from(names), max_size=len(names))) if names else set()
    arguments: dict[str, Any] = {}
    for name in names:
        if name in hostile:
            arguments[name] = draw(hostile_value(box), label=name)
        elif draw(st.integers(0, 9), label=f"{name} sent") > 0:
            arguments[name] = draw(plausible_value(box, name, properties[name]), label=name)
    extra_keys = st.sampled_from(["path", "cwd", "project_root", "__proto__", "../x", "limit", "x" * 300])
    extras = draw(st.dictionaries(extra_keys.filter(lambda k: k not in properties), json_values, max_size=2))
    return {**arguments, **extras}
