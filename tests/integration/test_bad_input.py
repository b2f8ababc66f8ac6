"""Bad input: every tool, driven through a real MCP session with hostile arguments.

Whatever arrives, each call returns the structured result shape, the session keeps answering,
nothing appears on disk outside the project root, and the database stays intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from goldfish.paths import DB_FILENAME, STATE_DIR
from goldfish.project import initialize_project
from goldfish.server.app import build_server
from goldfish.server.app_state import GoldfishApp
from tests.conftest import LONG_REASON, structured

EXPECTED_TOOLS = frozenset(
    {
        "status",
        "dashboard",
        "goldfish_version",
        "initialize_project",
        "validate_config",
        "reload_config",
        "create_workspace",
        "list_workspaces",
        "mount",
        "hibernate",
        "save_version",
        "rollback",
        "diff",
        "inspect_workspace",
        "delete_workspace",
        "manage_versions",
        "log_thought",
        "get_workspace_thoughts",
        "get_audit_log",
    }
)
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
HUGE = "x" * 100_000
# Paths outside any sandbox whose existence must not change (the tests run as any user, root included).
OUTSIDE_PROBES = (Path("/tmp/x"), Path("/etc/x"), Path("/x"), Path.home() / "x", Path("/etc/pwned"))
# Project at sandbox/a/b/project and cwd at sandbox/a/b/cwd: up to three '..' stay inside the sandbox.
PROJECT_DEPTH = ("a", "b")


@dataclass(frozen=True)
class Sandbox:
    """A temporary tree holding the project, the server's cwd and bait files outside the project."""

    top: Path
    root: Path
    cwd: Path
    outside: Path
    other_root: Path

    def snapshot(self) -> dict[str, str]:
        """Every path under the sandbox but outside the project, with a digest of each file."""
        found: dict[str, str] = {}
        for folder, dirs, files in os.walk(self.top):
            here = Path(folder)
            dirs[:] = [d for d in dirs if here / d != self.root]  # the project may change freely
            for name in [*dirs, *files]:
                path = here / name
                if path.is_symlink():
                    found[str(path)] = "link:" + os.readlink(path)
                elif path.is_dir():
                    found[str(path)] = "dir"
                else:
                    found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found


def outside_state() -> tuple[tuple[bool, ...], frozenset[str]]:
    """Existence of the probes outside the sandbox, and the names in /etc."""
    return tuple(os.path.lexists(p) for p in OUTSIDE_PROBES), frozenset(os.listdir("/etc"))


def make_sandbox(top: Path) -> Sandbox:
    """Create the project and bait files where traversal would land."""
    nest = top.joinpath(*PROJECT_DEPTH)
    root = nest / "project"
    nest.mkdir(parents=True)
    initialize_project(str(root), "testproj")
    cwd = nest / "cwd"
    cwd.mkdir()
    outside = top / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("bait\n")
    for base in (top, top / PROJECT_DEPTH[0], nest):
        (base / "etc").mkdir(exist_ok=True)
        (base / "etc" / "passwd").write_text("bait:x:0:0\n")
    return Sandbox(top=top, root=root, cwd=cwd, outside=outside, other_root=outside / "another-project")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A fresh sandbox; the process cwd is its cwd folder for the test."""
    made = make_sandbox(tmp_path / "sandbox")
    monkeypatch.chdir(made.cwd)
    return made


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


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------


def assert_structured(tool: str, arguments: dict[str, Any], result: CallToolResult) -> dict[str, Any]:
    """The result is the success shape or the full structured error shape of a user error."""
    payload = structured(result)
    if not result.is_error:
        assert payload["success"] is True
        return payload
    error = payload["error"]
    assert set(error) >= {"code", "message", "details", "remedy"}, (tool, error)
    assert isinstance(error["code"], str)
    assert UPPER_SNAKE.fullmatch(error["code"]), error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    assert isinstance(error["remedy"], str)
    # Hostile input is the caller's mistake: it is named as such, never as a server failure.
    assert error["code"] != "INTERNAL", (tool, _preview(arguments), error)
    return payload


def _preview(arguments: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:80] + "..." if isinstance(v, str) and len(v) > 80 else v) for k, v in arguments.items()}


def assert_initialize_elsewhere_refused(
    box: Sandbox, arguments: dict[str, Any], payload: dict[str, Any]
) -> None:
    """initialize_project never adopts another folder: a well-typed call for one is refused."""
    root, name = arguments.get("project_root"), arguments.get("project_name")
    if not (isinstance(root, str) and isinstance(name, str)):
        return
    if set(arguments) - {"project_root", "project_name", "from_existing"}:
        return  # an unknown argument is refused before anything else
    if not isinstance(arguments.get("from_existing", False), bool):
        return
    if "\x00" in root:
        expected = "INVALID_PATH"
    elif Path(root).expanduser().resolve() != box.root.resolve():
        expected = "PROJECT_EXISTS"
    else:
        return
    assert payload["success"] is False, _preview(arguments)
    assert payload["error"]["code"] == expected, (_preview(arguments), payload["error"])


def assert_database_intact(root: Path) -> None:
    """PRAGMA integrity_check passes and no foreign key dangles."""
    conn = sqlite3.connect(root / STATE_DIR / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# One session for many examples
# ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    """One MCP client session on a blocking portal, shared by every hypothesis example."""

    portal: BlockingPortal
    client: Client
    box: Sandbox
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def call(self, tool: str, arguments: dict[str, Any] | None) -> CallToolResult:
        result: CallToolResult = self.portal.call(self.client.call_tool, tool, arguments)
        return result

    def succeed(self, tool: str, **arguments: Any) -> dict[str, Any]:
        payload = structured(self.call(tool, arguments))
        assert payload["success"] is True, payload
        return payload


def prepare(session: Session) -> None:
    """ws1 mounted in w1 with two versions; ws2 exists unmounted."""
    session.succeed("create_workspace", name="ws1", goal="baseline", reason=LONG_REASON)
    session.succeed("create_workspace", name="ws2", goal="other idea", reason=LONG_REASON)
    session.succeed("mount", workspace="ws1", slot="w1", reason=LONG_REASON)
    slot = session.box.root / "workspaces" / "w1"
    (slot / "train.py").write_text("print('v1')\n")
    session.succeed("save_version", slot="w1", message="first version of the training script")
    (slot / "train.py").write_text("print('v2')\n")
    session.succeed("save_version", slot="w1", message="second version of the training script")
    (slot / "notes.md").write_text("unsaved\n")


@pytest.fixture(params=["legacy", "auto"])
def session(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[Session]:
    """A live client session (both protocol eras); on teardown the project database is checked."""
    app = GoldfishApp(sandbox.root)
    with ExitStack() as stack:
        portal = stack.enter_context(start_blocking_portal("asyncio"))
        client = stack.enter_context(
            portal.wrap_async_context_manager(Client(build_server(app), mode=request.param))
        )
        listed = portal.call(client.list_tools)
        live = Session(portal, client, sandbox, {t.name: dict(t.input_schema) for t in listed.tools})
        prepare(live)
        yield live
    app.close()
    assert_database_intact(sandbox.root)


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


# ---------------------------------------------------------------------------------------------
# Hostile files in the slot: bombs, deep nesting, huge files, duplicate keys, links out, '..'
# ---------------------------------------------------------------------------------------------

# Text that exists only in bait files outside the project: no reply may ever contain it.
OUTSIDE_MARKER = "OUTSIDE-ONLY-c0ffee"
VALID_PIPELINE = "stages:\n  - name: train\n    outputs:\n      model: {type: file}\n"


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target, target_is_directory=target.is_dir())


def _files(entries: dict[str, str]) -> Callable[[Path, Path], None]:
    def apply(slot: Path, _outside: Path) -> None:
        for rel, text in entries.items():
            (slot / rel).parent.mkdir(parents=True, exist_ok=True)
            (slot / rel).write_text(text, encoding="utf-8")

    return apply


def _links(entries: dict[str, str]) -> Callable[[Path, Path], None]:
    def apply(slot: Path, outside: Path) -> None:
        for rel, target in entries.items():
            _link(slot / rel, outside / target if not target.startswith("/") else Path(target))

    return apply


HOSTILE_SLOTS: dict[str, Callable[[Path, Path], None]] = {
    "alias bomb in pipeline.yaml": _files({"pipeline.yaml": VALID_PIPELINE + _alias_bomb()}),
    "alias bomb in a stage config": _files({"configs/train.yaml": "lr: 0.1\n" + _alias_bomb()}),
    "5000-deep nesting": _files({"pipeline.yaml": "stages: " + "[" * 5000 + "]" * 5000 + "\n"}),
    "2 MB pipeline.yaml": _files({"pipeline.yaml": VALID_PIPELINE + "#" * 2_000_000 + "\n"}),
    "duplicate keys": _files(
        {"pipeline.yaml": VALID_PIPELINE + VALID_PIPELINE, "configs/train.yaml": "a: 1\na: 2\n"}
    ),
    "configs/ links out": _links({"configs": "bait-configs"}),
    "pipelines/ links out": _links({"pipelines": "bait-pipelines"}),
    "pipeline.yaml links out": _links({"pipeline.yaml": "bait-pipelines/evil.yaml"}),
    "a module links to /etc/passwd": _links({"modules/train.py": "/etc/passwd"}),
}


def plant_outside_bait(outside: Path) -> None:
    """Files outside the project that a followed link or '..' name would read."""
    (outside / "bait-configs").mkdir()
    (outside / "bait-configs" / "train.yaml").write_text(f"lr: {OUTSIDE_MARKER}\n", encoding="utf-8")
    (outside / "bait-pipelines").mkdir()
    evil = f"stages:\n  - name: train\n    modul: {OUTSIDE_MARKER}\n"
    (outside / "bait-pipelines" / "evil.yaml").write_text(evil, encoding="utf-8")
    (outside / "evil.yaml").write_text(evil, encoding="utf-8")


def reset_slot(session: Session) -> Path:
    """ws1 mounted in w1 again, holding a valid one-stage pipeline and nothing hostile."""
    session.succeed("mount", workspace="ws1", slot="w1", reason=LONG_REASON)
    slot = session.box.root / "workspaces" / "w1"
    for rel in ("pipeline.yaml", "configs", "pipelines", "modules", "results_spec.yaml"):
        path = slot / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    _files(
        {"pipeline.yaml": VALID_PIPELINE, "configs/train.yaml": "lr: 0.1\n", "modules/train.py": "print(1)\n"}
    )(slot, session.box.outside)
    return slot


def slot_reading_calls() -> list[tuple[str, dict[str, Any]]]:
    """Every tool call that reads or saves the slot's files, plus '..' pipeline names."""
    spec = {"primary_metric": "loss", "direction": "minimize"}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("validate_config", {"workspace": "ws1"}),
        ("validate_config", {"workspace": "w1"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True}),
        ("inspect_workspace", {"name": "ws1", "include": ["pipeline"]}),
        ("diff", {"target": "w1"}),
        ("status", {}),
        ("dashboard", {}),
        ("save_version", {"slot": "w1", "message": "saving whatever the slot holds now"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "results_spec": spec}),
        ("hibernate", {"slot": "w1", "reason": LONG_REASON}),
        ("validate_config", {"workspace": "ws1"}),
        ("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True}),
    ]
    for name in ("../../../../outside/evil", "../../../outside/evil", "../evil", "/etc/passwd", "a/../../b"):
        calls.append(("run", {"workspace": "ws1", "reason": LONG_REASON, "dry_run": True, "pipeline": name}))
    return calls


def test_slot_reading_tools_when_the_slot_holds_hostile_files_answer_structured_and_leak_nothing(
    session: Session,
) -> None:
    box = session.box
    plant_outside_bait(box.outside)
    before, before_outside = box.snapshot(), outside_state()

    for scenario, make_hostile in HOSTILE_SLOTS.items():
        slot = reset_slot(session)
        make_hostile(slot, box.outside)
        for tool, arguments in slot_reading_calls():
            payload = assert_structured(tool, arguments, session.call(tool, arguments))
            assert OUTSIDE_MARKER not in json.dumps(payload), (scenario, tool, arguments)
            assert "bait:x:0:0" not in json.dumps(payload), (scenario, tool, arguments)
        assert structured(session.call("status", {}))["success"] is True, scenario
        assert box.snapshot() == before, scenario
    assert outside_state() == before_outside
    reset_slot(session)  # no link out of the slot stays behind for the database check
