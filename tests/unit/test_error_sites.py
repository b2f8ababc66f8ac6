"""Errors a stage can meet on its way to a backend each carry their own code, not the base class's."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import goldfish
from goldfish.backends.docker import images
from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig
from goldfish.errors import GoldfishError
from goldfish.runs.stage_secrets import StageSecrets

SOURCE = Path(goldfish.__file__).parent


def _bare_raises(path: Path) -> list[int]:
    """Lines of ``path`` that raise GoldfishError itself."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            called = node.exc.func
            if isinstance(called, ast.Name) and called.id == "GoldfishError":
                lines.append(node.lineno)
    return lines


def test_source_when_scanned_raises_no_bare_goldfish_error() -> None:
    found = {
        str(path.relative_to(SOURCE)): lines
        for path in sorted(SOURCE.rglob("*.py"))
        if (lines := _bare_raises(path))
    }
    assert found == {}, "give each its own class and code (errors.CODES)"


def _gce(tmp_path: Path) -> GceBackend:
    settings = BackendSettings(
        config=GoldfishConfig(project_name="p"), project_root=tmp_path, venvs=tmp_path, locks=tmp_path
    )
    return GceBackend(settings, lambda: None, None)  # type: ignore[arg-type,return-value]


def _raised(call: Any) -> GoldfishError:
    with pytest.raises(GoldfishError) as raised:
        call()
    return raised.value


def test_gce_launch_when_the_spec_has_no_image_says_image_not_prepared(tmp_path: Path) -> None:
    error = _raised(lambda: _gce(tmp_path).launch(SimpleNamespace(image=None)))  # type: ignore[arg-type]
    assert (error.code, error.message) == (
        "IMAGE_NOT_PREPARED",
        "The stage image was not prepared before launch.",
    )


def test_gce_backend_when_built_without_warm_pool_rows_says_warm_pool_unavailable(tmp_path: Path) -> None:
    error = _raised(lambda: _gce(tmp_path).pool)
    assert error.code == "WARM_POOL_UNAVAILABLE"


def test_stage_secrets_when_no_store_was_given_says_secret_store_unavailable() -> None:
    run = SimpleNamespace(secrets=["HF_TOKEN"], stage="train", backend="process")
    error = _raised(lambda: StageSecrets(None).resolve(run))  # type: ignore[arg-type]
    assert error.code == "SECRET_STORE_UNAVAILABLE"
    assert error.remedy


def test_base_dockerfile_when_not_installed_says_base_dockerfile_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "base_dockerfile_path", lambda: None)
    error = _raised(images.base_dockerfile)
    assert error.code == "BASE_DOCKERFILE_MISSING"
    assert "docker build" in error.remedy
