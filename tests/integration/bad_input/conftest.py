"""Fixtures of the bad-input tests: a fresh sandbox and a live session on it (both protocol eras)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from mcp import Client

from goldfish.server.app import build_server
from goldfish.server.app_state import GoldfishApp
from tests.integration.bad_input.sandbox_support import (
    Sandbox,
    Session,
    assert_database_intact,
    make_sandbox,
    prepare,
)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A fresh sandbox; the process cwd is its cwd folder for the test."""
    made = make_sandbox(tmp_path / "sandbox")
    monkeypatch.chdir(made.cwd)
    return made


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
