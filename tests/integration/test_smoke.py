import pytest
from mcp import Client

from tests.conftest import LONG_REASON, call


@pytest.mark.anyio
async def test_create_workspace_when_name_is_new_returns_workspace(client: Client) -> None:
    result = await call(client, "create_workspace", name="baseline", goal="first try", reason=LONG_REASON)
    assert result["success"] is True
    assert result["workspace"]["name"] == "baseline"
