"""The GCE backend's one door to Google's libraries: the only importer, with an install hint."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from goldfish.backends.gce import adaptor
from goldfish.backends.gce.compute import ComputeApi
from goldfish.backends.gce.config_check import GceNotConfiguredError

GCE_DIR = Path(adaptor.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in GCE_DIR.glob("*.py") if p.name != "adaptor.py"),
    ids=lambda p: p.name,
)
def test_gce_module_when_scanned_imports_no_google_library_nor_importlib(path: Path) -> None:
    imported = _imported_modules(path)
    sdk = {name for name in imported if name.split(".")[0] in ("google", "requests")}
    assert sdk == set() and "importlib" not in imported and "importlib.import_module" not in imported


def test_compute_library_when_missing_raises_not_configured_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)  # an import of it now fails

    with pytest.raises(GceNotConfiguredError) as caught:
        ComputeApi("proj", "http://127.0.0.1:9").list("us-central1-a", {})

    assert caught.value.details == {"missing_library": "google-cloud-compute"}
    assert "pip install 'goldfish-mcp[gce]'" in str(caught.value.remedy)


def test_missing_library_when_asked_names_the_import_problem_or_none() -> None:
    assert adaptor.missing_library("json") is None
    problem = adaptor.missing_library("google.cloud.no_such_client_library")
    assert problem is not None and "no_such_client_library" in problem
