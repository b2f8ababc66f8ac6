"""`goldfish secrets set | list | rm` as real subprocesses, and `list_secrets` through MCP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from goldfish.server.app import server_for
from tests.conftest import call
from tests.integration.pipeline_fixtures import workspace_in_slot, write_configs

VALUE = "wandb-0f9e8d7c6b5a"
CLI_TIMEOUT = 60


def goldfish(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goldfish", *args, "--project", str(root)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def test_secrets_set_from_stdin_then_list_and_rm_never_print_the_value(project_root: Path) -> None:
    stored = goldfish(project_root, "secrets", "set", "WANDB_API_KEY", stdin=VALUE + "\n")
    listed = goldfish(project_root, "secrets", "list", "--json")
    text = goldfish(project_root, "secrets", "list")
    removed = goldfish(project_root, "secrets", "rm", "WANDB_API_KEY")
    after = goldfish(project_root, "secrets", "list", "--json")

    assert stored.returncode == 0, stored.stderr
    store = project_root / ".goldfish" / "secrets.env"
    assert (project_root / ".goldfish" / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["secrets"]
    assert entry == {"name": "WANDB_API_KEY", "set_in": ["project secrets file"], "used_by": []}
    assert "WANDB_API_KEY: project secrets file" in text.stdout
    for done in (stored, listed, text, removed):
        assert VALUE not in done.stdout + done.stderr
    assert removed.returncode == 0 and json.loads(after.stdout)["secrets"] == []
    assert VALUE not in store.read_text()


def test_secrets_set_when_the_value_is_given_as_an_argument_is_refused(project_root: Path) -> None:
    done = goldfish(project_root, "secrets", "set", "HF_TOKEN", VALUE)

    assert done.returncode == 2
    assert not (project_root / ".goldfish" / "secrets.env").exists()


def test_secrets_set_when_stdin_is_empty_or_the_name_is_reserved_fails_with_a_fix(project_root: Path) -> None:
    empty = goldfish(project_root, "secrets", "set", "HF_TOKEN", stdin="")
    reserved = goldfish(project_root, "secrets", "set", "GOLDFISH_RUN_ID", stdin="x")

    assert empty.returncode == 2 and "goldfish secrets set HF_TOKEN" in empty.stderr
    assert reserved.returncode == 2 and "reserved" in reserved.stderr


@pytest.mark.anyio
async def test_list_secrets_names_where_each_is_set_and_which_stages_use_it(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", VALUE)
    goldfish(project_root, "secrets", "set", "WANDB_API_KEY", stdin=VALUE)
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "llm")
        write_configs(slot, {"train": {"secrets": ["HF_TOKEN", "MISSING_TOKEN"]}})

        result = await call(client, "list_secrets")

    assert result["success"] is True, result
    found = {item["name"]: item for item in result["secrets"]}
    assert found["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "set_in": ["server environment"],
        "used_by": ["llm:train"],
    }
    assert found["MISSING_TOKEN"]["set_in"] == []
    assert found["WANDB_API_KEY"]["set_in"] == ["project secrets file"]
    assert VALUE not in json.dumps(result)
