"""The pre-run review through real MCP client sessions: static checks, and who reviews in ``full`` mode.

Reviewer outcomes: the client's own model through sampling (a deterministic ``sampling_callback``,
in-process and over stdio), the Anthropic API (its package replaced by a stand-in at the outermost
boundary: tests never call the real API), and nobody (a client without sampling, no key), which
the record states with the reason.
"""

from __future__ import annotations

import json
import sys
import types as pytypes
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.client.session import ClientRequestContext

from goldfish.server.app import server_for
from tests.conftest import LONG_REASON, call
from tests.e2e.test_stdio_and_http import killed_at_exit, stdio_parameters
from tests.integration.pipeline_fixtures import (
    RESULTS_SPEC,
    fail,
    ok,
    start_run,
    wait_for_pipeline,
    workspace_in_slot,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("reaping_stray_processes")]

PIPELINE = """\
stages:
  - name: train
    outputs:
      model: {type: file}
      history: {type: csv}
"""
GOOD = """\
from goldfish.io import get_config, get_output_path, save_output

cfg = get_config()
get_output_path("model").write_text(str(cfg["lr"]))
save_output("history", [{"epoch": 1, "loss": 0.5}])
"""
ANSWER = {
    "findings": [{"level": "warning", "stage": "train", "message": "lr is never validated"}],
    "summary": "ok",
}


def full_review(root: Path) -> None:
    with (root / "goldfish.yaml").open("a", encoding="utf-8") as handle:
        handle.write("svs:\n  pre_run_review: full\n  review_timeout_seconds: 20\n")


def write_slot(slot: Path, module: str = GOOD, lr: float = 0.1) -> None:
    (slot / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (slot / "modules").mkdir(exist_ok=True)
    (slot / "modules" / "train.py").write_text(module, encoding="utf-8")
    (slot / "configs").mkdir(exist_ok=True)
    (slot / "configs" / "train.yaml").write_text(f"lr: {lr}\n", encoding="utf-8")


class Sampler:
    """A client model that answers every review the same way and keeps the prompts it read."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        content = params.messages[0].content
        assert isinstance(content, types.TextContent)
        self.prompts.append(content.text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="Here you go:\n" + json.dumps(ANSWER)),
            model="deterministic-test-model",
        )


async def review_of(client: Client, pipeline_run_id: str) -> dict[str, Any]:
    found = await ok(client, "get_svs_findings", run_id=pipeline_run_id)
    review: dict[str, Any] = found["svs"]["review"]
    return review


async def test_output_never_saved_stops_the_run_before_anything_is_saved(project_root: Path) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "blocked")
        write_slot(slot, GOOD.replace('save_output("history", [{"epoch": 1, "loss": 0.5}])\n', ""))
        before = await ok(client, "manage_versions", workspace="blocked", action="list")
        error = await fail(
            client, "run", "REVIEW_BLOCKED", workspace="w1", reason=LONG_REASON, results_spec=RESULTS_SPEC
        )
        assert "declared output 'history' is never saved" in error["message"]
        assert error["details"]["reviewed_by"] == "static"
        after = await ok(client, "manage_versions", workspace="blocked", action="list")
        assert after["versions"] == before["versions"]
        runs = await ok(client, "list_runs", workspace="blocked")
        assert runs["runs"] == []
        reviewed = await ok(client, "review_pipeline", workspace="blocked")
        assert reviewed["review"]["blocked"] is True


async def test_static_review_is_recorded_on_the_run_and_each_stage(project_root: Path) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "static")
        write_slot(slot)
        submission = await start_run(client)
        assert submission["review"]["reviewed_by"] == "static" and submission["review"]["findings"] == []
        info = await wait_for_pipeline(client, submission["pipeline_run_id"])
        assert info["state"] == "completed", info
        stage = info["stages"][0]["stage_run_id"]
        found = await ok(client, "get_svs_findings", run_id=stage)
        assert found["svs"]["review"]["reviewed_by"] == "static"


async def test_full_review_through_client_sampling_reads_code_config_and_changes(project_root: Path) -> None:
    full_review(project_root)
    sampler = Sampler()
    async with Client(server_for(project_root), mode="legacy", sampling_callback=sampler) as client:
        slot = await workspace_in_slot(client, "sampled")
        write_slot(slot)
        first = await start_run(client)
        assert (await wait_for_pipeline(client, first["pipeline_run_id"]))["state"] == "completed"
        review = await review_of(client, first["pipeline_run_id"])
        assert review["reviewed_by"] == "client_sampling" and review["why"] is None
        assert (
            review["findings"][0]["message"] == "lr is never validated"
            and review["findings"][0]["by"] == "model"
        )
        assert json.dumps(ANSWER) in review["model_text"]
        assert 'cfg["lr"]' in sampler.prompts[0] and "no earlier successful version" in sampler.prompts[0]
        write_slot(slot, lr=0.2)
        second = await start_run(client)
        assert "-lr: 0.1" in sampler.prompts[1] and "+lr: 0.2" in sampler.prompts[1]
        await wait_for_pipeline(client, second["pipeline_run_id"])
        on_demand = await ok(client, "review_pipeline", workspace="sampled")
        assert on_demand["review"]["reviewed_by"] == "client_sampling" and len(sampler.prompts) == 3


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_full_review_without_sampling_or_key_says_nobody_reviewed_and_why(
    project_root: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    full_review(project_root)
    async with Client(server_for(project_root), mode=mode) as client:
        slot = await workspace_in_slot(client, "unreviewed")
        write_slot(slot)
        submission = await start_run(client)
        review = await review_of(client, submission["pipeline_run_id"])
        assert review["reviewed_by"] == "none" and review["model_text"] is None
        assert "does not offer sampling" in review["why"] and "ANTHROPIC_API_KEY is not set" in review["why"]
        await wait_for_pipeline(client, submission["pipeline_run_id"])


class _FakeMessages:
    calls: list[dict[str, Any]] = []

    def create(self, **arguments: Any) -> Any:
        self.calls.append(arguments)
        return pytypes.SimpleNamespace(content=[pytypes.SimpleNamespace(text=json.dumps(ANSWER))])


async def test_full_review_falls_back_to_the_anthropic_api_when_a_key_is_set(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = pytypes.ModuleType("anthropic")
    fake.Anthropic = lambda **_: pytypes.SimpleNamespace(messages=_FakeMessages())  # type: ignore[attr-defined]
    fake.__spec__ = pytypes.SimpleNamespace(name="anthropic")  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "anthropic", fake)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-real")
    full_review(project_root)
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "api")
        write_slot(slot)
        submission = await start_run(client)
        review = await review_of(client, submission["pipeline_run_id"])
        assert review["reviewed_by"] == "anthropic_api", review
        assert _FakeMessages.calls[-1]["messages"][0]["content"].count('cfg["lr"]') == 1
        await wait_for_pipeline(client, submission["pipeline_run_id"])


async def test_full_review_through_client_sampling_over_stdio(project_root: Path, tmp_path: Path) -> None:
    full_review(project_root)
    sampler = Sampler()
    params, _, pid_file = stdio_parameters(tmp_path, ["--project", str(project_root)], tmp_path)
    with killed_at_exit(pid_file), anyio.fail_after(90):
        async with Client(params, mode="legacy", sampling_callback=sampler) as client:
            slot = await workspace_in_slot(client, "stdio")
            write_slot(slot)
            reviewed = await call(client, "review_pipeline", workspace="stdio")
            assert reviewed["review"]["reviewed_by"] == "client_sampling", reviewed
            assert reviewed["review"]["findings"][0]["message"] == "lr is never validated"
    assert len(sampler.prompts) == 1


async def test_a_client_model_that_errors_leaves_the_run_going_and_says_so(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    full_review(project_root)

    async def overloaded(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.ErrorData:
        return types.ErrorData(code=-32603, message="the model is overloaded")

    async with Client(server_for(project_root), mode="legacy", sampling_callback=overloaded) as client:
        slot = await workspace_in_slot(client, "overloaded")
        write_slot(slot)
        submission = await start_run(client)
        review = await review_of(client, submission["pipeline_run_id"])
        assert review["reviewed_by"] == "none" and review["blocked"] is False
        assert "client_sampling" in review["why"] and "the model is overloaded" in review["why"], review
        info = await wait_for_pipeline(client, submission["pipeline_run_id"])
        assert info["state"] == "completed"


async def test_a_resumed_run_carries_the_review_of_the_run_it_resumes(project_root: Path) -> None:
    async with Client(server_for(project_root), mode="legacy") as client:
        slot = await workspace_in_slot(client, "resumed")
        write_slot(slot, GOOD.replace("cfg = get_config()\n", "cfg = get_config()\nraise SystemExit(2)\n"))
        first = await start_run(client)
        assert (await wait_for_pipeline(client, first["pipeline_run_id"]))["state"] == "failed"
        again = await ok(
            client, "resume_pipeline", pipeline_run_id=first["pipeline_run_id"], reason=LONG_REASON
        )
        resumed = again["run"]["pipeline_run_id"]
        review = await review_of(client, resumed)
        assert review["reviewed_by"] == "static"
        assert review["why"] == f"the pre-run review of {first['pipeline_run_id']} (the same version)"
        await wait_for_pipeline(client, resumed)
