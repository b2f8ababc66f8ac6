"""Stage images on the local engine: a changed requirements.txt rebuilds only its layer; base-image tools."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.docker_backend.backend_support import ONE_STAGE, run_and_wait
from tests.integration.pipeline_fixtures import ok, workspace_in_slot, write_configs, write_pipeline

# -- images -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_requirements_when_changed_rebuild_only_their_layer_and_unchanged_reuse_the_image(
    dsession: Client, engine: Any
) -> None:
    slot = await workspace_in_slot(dsession, "alpha")
    write_pipeline(slot, ONE_STAGE)
    token = secrets.token_hex(4)  # fresh requirements: these images never exist before the test
    built: list[str] = []
    try:
        (slot / "requirements.txt").write_text(f"# {token} first\nnumpy\n", encoding="utf-8")
        first = await run_and_wait(dsession)
        (slot / "requirements.txt").write_text(f"# {token} second\nnumpy>=1.0\n", encoding="utf-8")
        write_configs(slot, {"prep": {"value": 2}})
        second = await run_and_wait(dsession)
        write_configs(slot, {"prep": {"value": 3}})  # same requirements, new code: image reused
        third = await run_and_wait(dsession)

        assert [r["state"] for r in (first, second, third)] == ["completed"] * 3
        status = await ok(dsession, "get_build_status", workspace="alpha")
        builds = [b for b in status["builds"] if b["kind"] == "stage" and b["requirements_hash"] != "none"]
        assert len(builds) == 2, builds  # the third run reused the second image
        newer, older = builds
        built = [older["image"], newer["image"]]
        assert older["state"] == newer["state"] == "succeeded"
        assert older["image"] != newer["image"]
        # The runtime layer (the step before the requirements) came from the cache the second time.
        assert _step_used_cache(newer["log_tail"], "COPY runtime/")
        assert not _step_used_cache(newer["log_tail"], "COPY requirements.txt")
        old_layers = engine.images.get(older["image"]).attrs["RootFS"]["Layers"]
        new_layers = engine.images.get(newer["image"]).attrs["RootFS"]["Layers"]
        base_layers = engine.images.get("goldfish-base:latest").attrs["RootFS"]["Layers"]
        shared = _common_prefix(old_layers, new_layers)
        assert shared == len(base_layers) + 1  # base + runtime shared; requirements layers differ
        one = await ok(dsession, "get_build_status", build_id=newer["build_id"])
        assert one["builds"][0]["build_id"] == newer["build_id"]
    finally:
        for image in built:
            with contextlib.suppress(Exception):
                engine.images.remove(image, force=True)


def _step_used_cache(log: str, instruction: str) -> bool:
    """Whether the build step starting with ``instruction`` was taken from the layer cache."""
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if instruction in line and line.startswith("Step "):
            following = lines[index + 1 : index + 3]
            return any("Using cache" in item for item in following)
    raise AssertionError(f"no step {instruction!r} in the build log:\n{log}")


def _common_prefix(left: list[str], right: list[str]) -> int:
    count = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        count += 1
    return count


@pytest.mark.anyio
async def test_base_image_tools_when_the_engine_has_the_base_list_and_check_it(dsession: Client) -> None:
    listed = await ok(dsession, "manage_base_images", action="list")
    assert listed["engine"]["reachable"] is True
    configured = next(i for i in listed["images"] if i["role"] == "configured")
    assert (configured["name"], configured["present"]) == ("goldfish-base:latest", True)

    checked = await ok(dsession, "manage_base_images", action="check")

    (image,) = checked["images"]
    assert image["python"].startswith("3.")
    assert image["pip"].startswith("pip ")
    assert image["runs_as_uid"] == 1000


@pytest.mark.anyio
async def test_base_image_build_when_asked_records_the_build_with_its_log(dsession: Client) -> None:
    built = await ok(
        dsession, "manage_base_images", action="build", name="goldfish-base:latest", reason=LONG_REASON
    )

    build = built["build"]
    assert (build["kind"], build["state"], build["image"]) == ("base", "succeeded", "goldfish-base:latest")
    assert "Successfully tagged goldfish-base:latest" in build["log_tail"]
    assert built["images"][0]["present"] is True
    status = await ok(dsession, "get_build_status", build_id=build["build_id"])
    assert status["builds"][0]["state"] == "succeeded"
