"""Stage image recipes, without an engine: tags follow their inputs, layers come in cache order."""

from __future__ import annotations

import tarfile
from pathlib import Path

from goldfish.backends.docker.images import (
    base_dockerfile,
    dockerfile_default_base,
    runtime_files,
    stage_context,
    stage_image_tag,
)

REPO = Path(__file__).resolve().parents[2]


def test_runtime_files_when_listed_are_goldfish_io_and_a_minimal_package() -> None:
    files = runtime_files()

    assert "goldfish/io/__init__.py" in files
    assert set(files) == {"goldfish/__init__.py"} | {n for n in files if n.startswith("goldfish/io/")}
    assert b"import" not in files["goldfish/__init__.py"]  # nothing but a docstring


def test_stage_image_tag_when_any_input_changes_changes_and_is_stable_otherwise() -> None:
    runtime = {"goldfish/io/__init__.py": b"x = 1\n"}
    tag = stage_image_tag("sha256:aaa", runtime, b"numpy\n")

    assert tag.startswith("goldfish-stage:") and len(tag.split(":")[1]) == 16
    assert stage_image_tag("sha256:aaa", dict(runtime), b"numpy\n") == tag
    assert stage_image_tag("sha256:bbb", runtime, b"numpy\n") != tag
    assert stage_image_tag("sha256:aaa", {"goldfish/io/__init__.py": b"x = 2\n"}, b"numpy\n") != tag
    assert stage_image_tag("sha256:aaa", runtime, b"numpy>=1\n") != tag
    assert stage_image_tag("sha256:aaa", runtime, None) != stage_image_tag("sha256:aaa", runtime, b"")


def test_stage_context_when_built_puts_the_runtime_before_requirements_and_ends_non_root() -> None:
    context = stage_context("goldfish-base:latest", {"goldfish/io/__init__.py": b"x = 1\n"}, b"numpy\n")

    with tarfile.open(fileobj=context) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
        mtimes = {member.mtime for member in tar.getmembers()}
    assert names == {"Dockerfile", "requirements.txt", "runtime/goldfish/io/__init__.py"}
    lines = [line for line in dockerfile.splitlines() if line and not line.startswith(" ")]
    assert lines[0] == "FROM goldfish-base:latest"
    assert lines.index("COPY runtime/ /opt/goldfish-runtime/") < lines.index(
        "COPY requirements.txt /opt/goldfish-stage/requirements.txt"
    )
    assert lines[-1] == "USER 1000"
    assert mtimes == {0}  # fixed metadata: unchanged files hit the layer cache


def test_stage_context_without_requirements_has_no_pip_layer() -> None:
    context = stage_context("base:1", {"goldfish/io/__init__.py": b""}, None)

    with tarfile.open(fileobj=context) as tar:
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert "requirements" not in dockerfile
    assert "pip" not in dockerfile


def test_base_dockerfile_when_read_is_the_repository_dockerfile_building_from_base() -> None:
    text = base_dockerfile()

    assert text == (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile_default_base(text) == "goldfish-debian-python:bookworm"
    assert "FROM ${BASE}" in text
    assert "USER 1000" in text
