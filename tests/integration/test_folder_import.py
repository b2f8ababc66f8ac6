"""`goldfish run DIR`'s folder import (``FolderImporter``): a plain folder run as a workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from goldfish.context import ServerContext
from goldfish.errors import InvalidArgumentError, InvalidPathError


def pipeline_folder(base: Path, name: str = "my experiment") -> Path:
    folder = base / name
    (folder / "modules").mkdir(parents=True)
    (folder / "pipeline.yaml").write_text("name: p\nstages:\n  - name: train\n", encoding="utf-8")
    (folder / "modules" / "train.py").write_text("print('hi')\n", encoding="utf-8")
    return folder


def test_a_folder_while_imported_is_mounted_then_its_slot_is_freed(
    context: ServerContext, tmp_path: Path
) -> None:
    folder = pipeline_folder(tmp_path)
    imports = context.folder_imports

    with imports.workspace_to_run(str(folder)) as workspace:
        slot = context.workspace_rows.mount_of_workspace(context.core.workspace(workspace).id)
        held = sorted(p.name for p in context.paths.slot(slot.slot).iterdir()) if slot else []

    assert workspace == "my-experiment"
    assert held == ["modules", "pipeline.yaml"]
    assert context.workspace_rows.mount_of_workspace(context.core.workspace(workspace).id) is None
    recorded = json.loads((context.paths.state_dir / "imports.json").read_text(encoding="utf-8"))
    assert recorded == {str(folder.resolve()): "my-experiment"}


def test_a_second_import_of_the_same_folder_reuses_its_workspace(
    context: ServerContext, tmp_path: Path
) -> None:
    folder = pipeline_folder(tmp_path)
    context.workspaces.create("my-experiment", "taken by someone else")

    with context.folder_imports.workspace_to_run(str(folder)) as first:
        pass
    with context.folder_imports.workspace_to_run(str(folder)) as second:
        pass

    assert first == second == "my-experiment-2"


def test_a_workspace_name_or_slot_is_run_as_given(context: ServerContext) -> None:
    context.workspaces.create("alpha", "learn something")

    with context.folder_imports.workspace_to_run("alpha") as named:
        pass
    with context.folder_imports.workspace_to_run(str(context.paths.slot("w1"))) as slot:
        pass

    assert (named, slot) == ("alpha", "w1")
    assert context.folder_imports.folder_to_import("alpha") is None


def test_a_folder_without_a_pipeline_is_refused(context: ServerContext, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(InvalidArgumentError, match="neither a workspace nor a folder with a pipeline"):
        context.folder_imports.folder_to_import(str(tmp_path / "empty"))


def test_the_project_folder_itself_is_refused(context: ServerContext) -> None:
    with pytest.raises(InvalidPathError, match="holds the project"):
        context.folder_imports.folder_to_import(str(context.paths.root))
