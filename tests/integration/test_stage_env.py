"""Stage environment and secrets through real MCP sessions on the process backend.

A stage gets its plain ``env`` (its own keys over ``defaults.env``) and its declared secrets as
ordinary environment variables; the env is recorded in the manifest and the cache key, a secret's
value nowhere: the test scans every byte the project holds (database + WAL, dev repo objects,
storage, STATE.md, logs) for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from goldfish.secrets.store import SecretStore
from goldfish.server.app import server_for
from goldfish.yamlfile import load_yaml
from tests.conftest import LONG_REASON
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    by_stage,
    fail,
    ok,
    wait_for_pipeline,
    workspace_in_slot,
    write_configs,
)

SECRET = "hf_s3cr3t-VALUE-0123456789abcdef"  # noqa: S105 - the value the scan looks for
ONE_STAGE = """\
name: one
stages:
  - name: train
    outputs:
      report: {type: file}
"""
ENV_MODULE = """\
import os
from pathlib import Path

from goldfish.io import get_config, get_output_path, log_metric

token = os.environ.get("HF_TOKEN", "<unset>")
print("token is", token, flush=True)
print("token again", token, file=__import__("sys").stderr, flush=True)
print("OMP", os.environ.get("OMP_NUM_THREADS"), "HF_HOME", os.environ.get("HF_HOME"), flush=True)
print("leaked", os.environ.get("SERVER_ONLY_VALUE", "<absent>"), flush=True)
print("config keys", sorted(get_config()), flush=True)
log_metric(f"seen/{token}", 1.0)
with open(os.environ["GOLDFISH_METRICS_FILE"], "a") as direct:  # around goldfish.io and the runner
    direct.write('{"name": "direct/' + token + '", "value": 2.0}\\n')
with open(os.environ["GOLDFISH_LOGS_DIR"] + "/stdout.log", "a") as direct:
    direct.write("direct " + token + "\\n")
Path(get_output_path("report")).write_text("done")
"""


pytestmark = pytest.mark.usefixtures("reaping_stray_processes")


def set_defaults(root: Path, **defaults: Any) -> None:
    config = root / "goldfish.yaml"
    data = load_yaml(config.read_text(encoding="utf-8"), "goldfish.yaml").data
    data.setdefault("defaults", {}).update(defaults)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def write_env_stage(slot: Path, config: dict[str, Any]) -> None:
    (slot / "pipeline.yaml").write_text(ONE_STAGE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "train.py").write_text(ENV_MODULE, encoding="utf-8")
    write_configs(slot, {"train": config})


async def run_once(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await ok(
        client, "run", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC, **arguments
    )
    return await wait_for_pipeline(client, result["run"]["pipeline_run_id"])


def files_holding(root: Path, needle: bytes, *, skip: Path) -> list[str]:
    """Every file under ``root`` (but ``skip``) whose bytes contain ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path != skip and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


@pytest.mark.anyio
async def test_run_with_env_and_a_secret_gives_both_to_the_stage_and_stores_the_value_nowhere(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ONLY_VALUE", "from-the-server")
    set_defaults(project_root, env={"OMP_NUM_THREADS": "2", "HF_HOME": "/tmp/hf"})
    SecretStore(project_root / ".goldfish").set("HF_TOKEN", SECRET)
    async with Client(server_for(project_root), mode="legacy") as legacy_session:
        slot = await workspace_in_slot(legacy_session, "envws")
        write_env_stage(slot, {"lr": 0.1, "env": {"OMP_NUM_THREADS": 4}, "secrets": ["HF_TOKEN"]})
        run = await run_once(legacy_session)
        await check_env_run(legacy_session, project_root, run)


async def check_env_run(legacy_session: Client, project_root: Path, run: dict[str, Any]) -> None:
    """What the env-and-secret run must show, and the scan for the secret's value."""

    stage = by_stage(run["stages"])["train"]
    assert stage["status"] == "completed", stage
    out = await ok(legacy_session, "logs", run_id=stage["stage_run_id"], stream="stdout", tail=50)
    err = await ok(legacy_session, "logs", run_id=stage["stage_run_id"], stream="stderr", tail=50)
    stdout, stderr = "\n".join(out["logs"]["lines"]), "\n".join(err["logs"]["lines"])
    assert "token is ***" in stdout and "token again ***" in stderr
    assert "OMP 4 HF_HOME /tmp/hf" in stdout  # the stage's own key wins over defaults.env
    assert "leaked <absent>" in stdout  # the server's environment does not leak into a stage
    assert "config keys ['lr']" in stdout  # env/secrets/compute are not part of get_config()
    metrics = await ok(legacy_session, "get_metrics", run_id=stage["stage_run_id"])
    assert "seen/***" in json.dumps(metrics) and "direct/***" in json.dumps(metrics)
    found = (await ok(legacy_session, "inspect_run", run_id=stage["stage_run_id"], include=["manifest"]))[
        "inspect"
    ]
    assert found["manifest"]["env"] == {"OMP_NUM_THREADS": "4", "HF_HOME": "/tmp/hf"}
    assert found["manifest"]["secrets"] == ["HF_TOKEN"]
    store = project_root / ".goldfish" / "secrets.env"
    assert store.stat().st_mode & 0o777 == 0o600
    assert files_holding(project_root, SECRET.encode(), skip=store) == []


@pytest.mark.anyio
async def test_run_when_a_secret_comes_from_the_server_environment_reaches_the_stage(
    legacy_session: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    slot = await workspace_in_slot(legacy_session, "envws")
    write_env_stage(slot, {"secrets": ["HF_TOKEN"]})

    run = await run_once(legacy_session)

    stage = by_stage(run["stages"])["train"]
    out = await ok(legacy_session, "logs", run_id=stage["stage_run_id"], stream="stdout", tail=50)
    assert "token is ***" in out["logs"]["lines"]


@pytest.mark.anyio
async def test_run_when_a_secret_has_no_value_fails_with_secret_not_set_and_saves_nothing(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "envws")
    write_env_stage(slot, {"secrets": ["WANDB_API_KEY"]})

    error = await fail(
        legacy_session, "run", "SECRET_NOT_SET", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC
    )

    assert error["details"]["missing"] == ["WANDB_API_KEY"]
    assert "goldfish secrets set" in error["remedy"]
    runs = await ok(legacy_session, "list_runs", workspace="envws")
    assert runs["total"] == 0 and runs["runs"] == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "override",
    [{"HF_TOKEN": "abc"}, {"train": {"wandb": {"api_key": "abc"}}}, {"env": {"DB_PASSWORD": "abc"}}],
)
async def test_run_when_config_override_holds_a_secret_looking_key_is_refused_pointing_at_secrets(
    legacy_session: Client, override: dict[str, Any]
) -> None:
    slot = await workspace_in_slot(legacy_session, "envws")
    write_env_stage(slot, {})

    error = await fail(
        legacy_session,
        "run",
        "INVALID_ARGUMENT",
        workspace="w1",
        reason=LONG_REASON,
        results_spec=RESULTS_SPEC,
        config_override=override,
    )

    assert "secrets:" in error["remedy"]
    assert "abc" not in json.dumps(error)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OPENAI_API_KEY": "sk-1"}, "looks like a secret"),
        ({"GOLDFISH_RUN_ID": "x"}, "reserved"),
        ({"CUDA_VISIBLE_DEVICES": "0"}, "compute.gpus"),
        ({"BAD-NAME": "1"}, "not an environment variable name"),
        ({"LIST": [1, 2]}, "must be text"),
    ],
)
async def test_run_when_stage_env_is_not_allowed_is_invalid_naming_the_file_and_key(
    legacy_session: Client, env: dict[str, Any], problem: str
) -> None:
    slot = await workspace_in_slot(legacy_session, "envws")
    write_env_stage(slot, {"env": env})

    error = await fail(
        legacy_session,
        "run",
        "PIPELINE_INVALID",
        workspace="w1",
        reason=LONG_REASON,
        results_spec=RESULTS_SPEC,
    )

    assert problem in error["message"] and "configs/train.yaml" in error["message"]
    assert "sk-1" not in json.dumps(error)
    checked = await ok(legacy_session, "validate_config", workspace="envws")
    assert any(problem in p["message"] for p in checked["problems"]), checked


@pytest.mark.anyio
async def test_rerun_when_only_the_env_changes_runs_again_and_when_nothing_changes_reuses(
    legacy_session: Client,
) -> None:
    slot = await workspace_in_slot(legacy_session, "envws")
    write_env_stage(slot, {"env": {"OMP_NUM_THREADS": "1"}})
    first = by_stage((await run_once(legacy_session))["stages"])["train"]
    write_env_stage(slot, {"env": {"OMP_NUM_THREADS": "2"}})
    second = by_stage((await run_once(legacy_session))["stages"])["train"]
    third = by_stage((await run_once(legacy_session))["stages"])["train"]

    assert (first["cache_hit"], second["cache_hit"], third["cache_hit"]) == (False, False, True)
