"""The bad-input sandbox (a project with bait where traversal would land), the session, the checks.

Whatever arrives, each call returns the structured result shape, the session keeps answering,
nothing appears on disk outside the project root, and the database stays intact.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal
from mcp import Client
from mcp.types import CallToolResult

from goldfish.paths import DB_FILENAME, STATE_DIR
from goldfish.project import initialize_project
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
