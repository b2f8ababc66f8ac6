"""``goldfish demo``: the workspace flow, end to end, through a real MCP client session.

It creates a project in a temporary folder (or the one given), then does what an agent does:
create and mount a workspace, edit plain files, save versions, diff, tag, roll back, log a
thought and read the status back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from goldfish.project import initialize_project
from goldfish.server.app import server_for

REASON = "walking the Goldfish workspace flow in the demo"

PIPELINE = """name: demo
stages:
  - name: train
    inputs: {}
    outputs:
      model: {type: directory}
"""
TRAIN_V1 = "from goldfish.io import get_config\n\nprint('learning rate', get_config()['lr'])\n"
CONFIG_V1 = "lr: 0.1\nepochs: 5\n"
CONFIG_V2 = "lr: 0.01\nepochs: 20\n"


class DemoError(RuntimeError):
    """A demo step did not succeed."""


async def _call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    payload: dict[str, Any] = result.structured_content or {}
    if result.is_error:
        raise DemoError(f"{tool} failed: {payload.get('error')}")
    return payload


def _step(text: str) -> None:
    print(f"\n== {text}")


async def _walk(root: Path) -> None:
    async with Client(server_for(root)) as client:
        _step("create_workspace + mount")
        await _call(client, "create_workspace", name="baseline", goal="a first model", reason=REASON)
        mounted = await _call(client, "mount", workspace="baseline", slot="w1", reason=REASON)
        slot = Path(mounted["mount"]["slot_path"])
        print(f"slot {slot} holds workspace 'baseline'")

        _step("edit plain files, save v1")
        (slot / "modules").mkdir()
        (slot / "configs").mkdir()
        (slot / "pipeline.yaml").write_text(PIPELINE)
        (slot / "modules" / "train.py").write_text(TRAIN_V1)
        (slot / "configs" / "train.yaml").write_text(CONFIG_V1)
        saved = await _call(client, "save_version", slot="w1", message="First training setup")
        print(f"saved {saved['save']['version']['version']} ({saved['save']['files_changed']} files)")
        report = await _call(client, "validate_config", workspace="baseline")
        print(f"validate_config: valid={report['valid']} checked={report['checked']}")

        _step("change the config, diff, save v2, tag v1")
        (slot / "configs" / "train.yaml").write_text(CONFIG_V2)
        diff = await _call(client, "diff", target="w1")
        print(diff["diff"]["patch"].rstrip())
        await _call(client, "save_version", slot="w1", message="Lower learning rate, more epochs")
        await _call(
            client,
            "manage_versions",
            workspace="baseline",
            action="tag",
            version="v1",
            tag="first-try",
            reason=REASON,
        )

        _step("rollback to the tagged version (recorded as v3)")
        rolled = await _call(client, "rollback", slot="w1", version="first-try", reason=REASON)
        print(
            f"now at {rolled['save']['version']['version']}: "
            f"{(slot / 'configs' / 'train.yaml').read_text()!r}"
        )

        await _call(
            client, "log_thought", workspace="baseline", thought="lr 0.01 needs more epochs; retry later"
        )
        _step("status")
        status = await _call(client, "status")
        print(status["state_md"])


def run_demo(folder: Path | None = None) -> int:
    """Run the demo in ``folder`` (default: a new temporary folder); return an exit code."""
    root = (folder or Path(tempfile.mkdtemp(prefix="goldfish-demo-"))) / "project"
    initialize_project(str(root), "goldfish-demo")
    print(f"Demo project: {root}")
    try:
        anyio.run(_walk, root)
    except DemoError as exc:
        print(f"demo failed: {exc}")
        return 1
    print(f"Look next: {root / 'STATE.md'}, sqlite3 {root / '.goldfish' / 'goldfish.db'} '.tables'")
    return 0
