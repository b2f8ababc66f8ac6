"""Listing, tagging and pruning versions through real MCP sessions: ``manage_versions``."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import (
    create,
    diff,
    fail,
    manage,
    mount,
    save,
    version_names,
    versions,
    write,
)

# -- manage_versions -------------------------------------------------------------------------


async def workspace_with_versions(client: Client, count: int, name: str = "baseline") -> Path:
    await create(client, name)
    slot = await mount(client, name)
    for number in range(1, count + 1):
        write(slot, {"step.txt": f"{number}\n"})
        assert (await save(client, message=f"step {number}"))["version"]["version"] == f"v{number}"
    return slot


@pytest.mark.anyio
async def test_manage_versions_list_returns_newest_first_with_paging(client: Client) -> None:
    await workspace_with_versions(client, 5)
    page = await versions(client, "baseline", limit=2, offset=1)
    assert [v["version"] for v in page["versions"]] == ["v4", "v3"]
    assert page["total"] == 5
    assert page["action"] == "list"
    first = page["versions"][0]
    assert first["message"] == "step 4"
    assert first["tags"] == []
    assert first["pruned"] is False
    assert first["age"].endswith("ago")
    await fail(client, "manage_versions", "INVALID_ARGUMENT", workspace="baseline", action="list", limit=0)
    await fail(client, "manage_versions", "INVALID_ARGUMENT", workspace="baseline", action="list", limit=201)


@pytest.mark.anyio
async def test_manage_versions_when_workspace_given_as_slot_resolves_it(client: Client) -> None:
    await workspace_with_versions(client, 2)
    page = await versions(client, "w1")
    assert page["workspace"] == "baseline"
    assert page["total"] == 2


@pytest.mark.anyio
async def test_manage_versions_tag_and_untag_show_in_list(client: Client) -> None:
    await workspace_with_versions(client, 3)
    tagged = await manage(client, "baseline", "tag", version="v2", tag="best")
    assert tagged["changed"] == ["v2"]
    by_name = {v["version"]: v for v in tagged["versions"]}
    assert by_name["v2"]["tags"] == ["best"]
    await manage(client, "baseline", "tag", version="v2", tag="also-best")
    page = await versions(client, "baseline")
    assert {v["version"]: v["tags"] for v in page["versions"]}["v2"] == ["also-best", "best"]

    untagged = await manage(client, "baseline", "untag", tag="best")
    assert untagged["changed"] == ["v2"]
    assert {v["version"]: v["tags"] for v in untagged["versions"]}["v2"] == ["also-best"]


@pytest.mark.anyio
async def test_manage_versions_when_tag_used_or_missing_refuses(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "tag", version="v1", tag="best")
    used = await fail(
        client,
        "manage_versions",
        "TAG_EXISTS",
        workspace="baseline",
        action="tag",
        version="v2",
        tag="best",
        reason=LONG_REASON,
    )
    assert used["details"]["version"] == "v1"
    await fail(
        client,
        "manage_versions",
        "TAG_NOT_FOUND",
        workspace="baseline",
        action="untag",
        tag="nope",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "VERSION_NOT_FOUND",
        workspace="baseline",
        action="tag",
        version="v9",
        tag="x",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="tag",
        version="v1",
        tag="bad tag",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="tag",
        tag="x",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_when_changing_without_reason_returns_reason_required(client: Client) -> None:
    await workspace_with_versions(client, 1)
    for action, extra in (("tag", {"version": "v1", "tag": "t"}), ("prune", {"version": "v1"})):
        await fail(client, "manage_versions", "REASON_REQUIRED", workspace="baseline", action=action, **extra)
    page = await versions(client, "baseline")
    assert page["versions"][0]["tags"] == []
    assert page["versions"][0]["pruned"] is False


@pytest.mark.anyio
async def test_manage_versions_prune_hides_version_and_unprune_restores_it(client: Client) -> None:
    await workspace_with_versions(client, 3)
    pruned = await manage(client, "baseline", "prune", version="v2")
    assert pruned["changed"] == ["v2"]
    assert [v["version"] for v in pruned["versions"]] == ["v3", "v1"]
    assert pruned["total"] == 2
    everything = await versions(client, "baseline", include_pruned=True)
    assert [(v["version"], v["pruned"]) for v in everything["versions"]] == [
        ("v3", False),
        ("v2", True),
        ("v1", False),
    ]
    assert everything["total"] == 3
    # A pruned version can still be read.
    assert (await diff(client, "baseline@v2"))["against"] == "baseline@v1"

    restored = await manage(client, "baseline", "unprune", version="v2")
    assert restored["changed"] == ["v2"]
    assert await version_names(client, "baseline") == ["v3", "v2", "v1"]


@pytest.mark.anyio
async def test_manage_versions_prune_when_version_tagged_returns_version_tagged(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "tag", version="v1", tag="keep")
    error = await fail(
        client,
        "manage_versions",
        "VERSION_TAGGED",
        workspace="baseline",
        action="prune",
        version="v1",
        reason=LONG_REASON,
    )
    assert error["details"] == {"version": "v1", "tags": ["keep"]}
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_manage_versions_prune_range_skips_tagged_versions(client: Client) -> None:
    await workspace_with_versions(client, 5)
    await manage(client, "baseline", "tag", version="v3", tag="keep")
    result = await manage(client, "baseline", "prune", from_version="v2", to_version="v4")
    assert sorted(result["changed"]) == ["v2", "v4"]
    assert result["skipped"] == ["v3"]
    assert await version_names(client, "baseline") == ["v5", "v3", "v1"]
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="prune",
        from_version="v4",
        to_version="v2",
        reason=LONG_REASON,
    )
    await fail(
        client,
        "manage_versions",
        "INVALID_ARGUMENT",
        workspace="baseline",
        action="prune",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_prune_before_tag_hides_older_untagged_versions(client: Client) -> None:
    await workspace_with_versions(client, 5)
    await manage(client, "baseline", "tag", version="v2", tag="milestone")
    await manage(client, "baseline", "tag", version="v4", tag="release")
    result = await manage(client, "baseline", "prune_before_tag", tag="release")
    assert sorted(result["changed"]) == ["v1", "v3"]
    assert await version_names(client, "baseline") == ["v5", "v4", "v2"]
    await fail(
        client,
        "manage_versions",
        "TAG_NOT_FOUND",
        workspace="baseline",
        action="prune_before_tag",
        tag="nope",
        reason=LONG_REASON,
    )


@pytest.mark.anyio
async def test_manage_versions_tag_on_pruned_version_makes_it_visible_again(client: Client) -> None:
    await workspace_with_versions(client, 2)
    await manage(client, "baseline", "prune", version="v1")
    await manage(client, "baseline", "tag", version="v1", tag="rescued")
    assert await version_names(client, "baseline") == ["v2", "v1"]


@pytest.mark.anyio
async def test_save_version_after_prunes_continues_numbering(client: Client) -> None:
    slot = await workspace_with_versions(client, 3)
    await manage(client, "baseline", "prune", from_version="v1", to_version="v3")
    assert await version_names(client, "baseline") == []
    write(slot, {"step.txt": "4\n"})
    saved = await save(client)
    assert saved["version"]["version"] == "v4"
    assert await version_names(client, "baseline") == ["v4"]
    assert await version_names(client, "baseline", include_pruned=True) == ["v4", "v3", "v2", "v1"]
