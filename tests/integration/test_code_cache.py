"""The version-files cache: incremental writes from the parent version keep every copy intact."""

from __future__ import annotations

from pathlib import Path

from goldfish.context import ServerContext
from goldfish.workspaces.code_cache import CodeCache


def test_code_cache_when_a_version_changes_one_file_links_the_rest_and_keeps_the_parent_intact(
    project_root: Path,
) -> None:
    context = ServerContext.open(project_root)
    try:
        context.workspaces.create("cc", "cache test")
        context.workspaces.mount("cc", "w1")
        slot = project_root / "workspaces" / "w1"
        for i in range(20):
            (slot / f"f{i}.txt").write_text(f"file {i}\n")
        (slot / "gone.txt").write_text("to be deleted\n")
        v1 = context.versions.save("w1", "first")
        (slot / "f3.txt").write_text("changed\n")
        (slot / "gone.txt").unlink()
        (slot / "new.txt").write_text("added\n")
        v2 = context.versions.save("w1", "second")
        repo = context.repo
        c1 = repo.resolve("refs/tags/cc-v1")
        c2 = repo.resolve("refs/tags/cc-v2")
        assert v1.version is not None and v2.version is not None and c1 and c2
        cache = CodeCache(repo, project_root / ".goldfish" / "code")

        first = cache.path(c1)
        second = cache.path(c2)

        assert (first / "f3.txt").read_text() == "file 3\n", "the parent's copy must not change"
        assert (first / "gone.txt").exists()
        assert (second / "f3.txt").read_text() == "changed\n"
        assert not (second / "gone.txt").exists()
        assert (second / "new.txt").read_text() == "added\n"
        linked = (second / "f7.txt").stat().st_ino == (first / "f7.txt").stat().st_ino
        assert linked, "unchanged files are hardlinked, not written again"
        assert sorted(p.name for p in second.iterdir() if p.name != ".goldfish-ready") == sorted(
            repo.list_files(c2)
        )
    finally:
        context.close()
