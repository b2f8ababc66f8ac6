"""Server start-up: the project loads after the handshake, and results are still checked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mcp import Client

from goldfish.server.app import WarmUp, build_server
from goldfish.server.app_state import GoldfishApp
from tests.integration.pipeline_fixtures import eventually


@pytest.mark.anyio
async def test_server_loads_its_project_once_the_client_has_listed_the_tools(project_root: Path) -> None:
    app = GoldfishApp(project_root)

    async with Client(build_server(app), mode="legacy") as client:
        listed = await client.list_tools()

        async def loaded() -> bool:
            return app.loaded_context() is not None

        assert await eventually(loaded, timeout=20)
    assert len(listed.tools) > 40
    assert all(tool.output_schema is None for tool in listed.tools)


@pytest.mark.anyio
async def test_tool_results_still_carry_structured_content_checked_against_their_model(
    project_root: Path,
) -> None:
    async with Client(build_server(GoldfishApp(project_root)), mode="legacy") as client:
        result = await client.call_tool("status", {})

    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["success"] is True


class RecordingWarmUp(WarmUp):
    """A WarmUp that records when it would start loading instead of arming a timer."""

    def __init__(self, app: GoldfishApp):
        super().__init__(app)
        self.armed: list[float] = []

    def start_after(self, seconds: float) -> None:
        self.armed.append(seconds)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "arms"), [("initialize", False), ("notifications/initialized", False), ("tools/list", True)]
)
async def test_warm_up_starts_after_an_answered_request_never_after_a_notification(
    project_root: Path, method: str, arms: bool
) -> None:
    warm_up = RecordingWarmUp(GoldfishApp(project_root))

    answer = {"answered": True}

    async def answered(ctx: Any) -> dict[str, Any]:
        return answer

    result = await warm_up.middleware()(cast(Any, SimpleNamespace(method=method)), answered)

    assert result is answer
    assert bool(warm_up.armed) is arms
