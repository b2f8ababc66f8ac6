"""A plain folder run as a workspace (``goldfish run ./my-pipeline``).

``.goldfish/imports.json`` maps each imported folder's absolute path to its workspace
(``{"/abs/path/to/folder": "folder"}``); the workspace's goal names the folder too, for people
reading ``status``. The first import creates a workspace named after the folder (``folder``, or
``folder-2`` when taken); later imports of the same path reuse it. Each import mounts the
workspace in a free slot, mirrors the folder's files into it (:func:`goldfish.runs.mirror.mirror_folder`),
lets the run save that as the next version, and hibernates the slot again, so imports hold no slot
between runs. If the workspace is already mounted (someone mounted it by hand) its slot is used
and left mounted, and the folder's files replace what the slot held.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from goldfish.config import GoldfishConfig
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.errors import InvalidArgumentError, InvalidPathError, SlotOccupiedError
from goldfish.fileops import write_text_atomic
from goldfish.locks import file_lock
from goldfish.paths import ProjectPaths
from goldfish.runs.mirror import mirror_folder
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.service import WorkspaceService

IMPORTS_FILE = "imports.json"
IMPORT_WAIT_SECONDS = 300.0


class FolderImporter:
    """Turns a folder given where a workspace is expected into a mounted workspace holding its files."""

    def __init__(
        self,
        config: GoldfishConfig,
        paths: ProjectPaths,
        core: WorkspaceCore,
        rows: WorkspaceRepository,
        workspaces: WorkspaceService,
    ):
        self._slots = config.slots
        self._paths = paths
        self._core = core
        self._rows = rows
        self._workspaces = workspaces

    @contextmanager
    def workspace_to_run(self, ref: str) -> Iterator[str]:
        """The workspace (or slot) to run, for the duration of the ``with`` block.

        A workspace name or slot is yielded as given, and wins over a folder of the same name
        (write ``./name`` for the folder). A slot folder given as a path is that slot. Any other
        folder is imported (see the module docstring): its workspace is mounted and holds the
        folder's files while the block runs, and the slot is hibernated again afterwards if this
        call mounted it. Anything else is yielded unchanged, so the run service reports an unknown
        workspace with a did-you-mean.
        """
        folder = self.folder_to_import(ref)
        if folder is None:
            yield self._as_slot(ref)
            return
        digest = hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
        # One import of a folder at a time: a second one waits until the first has submitted its run.
        with file_lock(
            self._paths.locks / f"import-{digest}.lock", f"Importing {folder}", IMPORT_WAIT_SECONDS
        ):
            name = self._workspace_of(folder)
            slot, mounted_here = self._mount_somewhere(name)
            try:
                with self._core.locked(name):
                    mirror_folder(folder, self._core.slot_path(slot))
                yield name
            finally:
                if mounted_here:
                    self._workspaces.hibernate(slot)

    def folder_to_import(self, ref: str) -> Path | None:
        """The folder :meth:`workspace_to_run` imports for ``ref``; None for a workspace or slot.

        Raises:
            InvalidPathError: the folder holds the project or lies inside its state or slots.
            InvalidArgumentError: the folder has no pipeline.
        """
        ref = self._as_slot(ref)
        path = Path(ref).expanduser()
        if self._named(ref) or not path.is_dir():
            return None
        folder = path.resolve()
        self._check_importable(folder)
        return folder

    def _named(self, ref: str) -> bool:
        return ref in self._slots or self._rows.get(ref) is not None

    def _as_slot(self, ref: str) -> str:
        """``ref``, or the slot whose folder ``ref`` is."""
        path = Path(ref).expanduser()
        if self._named(ref) or not path.is_dir():
            return ref
        folder = path.resolve()
        return next((slot for slot in self._slots if self._paths.slot(slot).resolve() == folder), ref)

    def _workspace_of(self, folder: Path) -> str:
        """The workspace ``folder`` was imported into, created on its first import."""
        with file_lock(self._paths.locks / "imports.lock", "The list of imported folders"):
            imports = self._read_imports()
            name = imports.get(str(folder))
            if name is None or self._rows.get(name) is None:
                name = self._free_name(folder.name)
                self._workspaces.create(name, f"Imported from {folder} by `goldfish run`.")
                imports[str(folder)] = name
                write_text_atomic(self._imports_file, json.dumps(imports, indent=2, sort_keys=True) + "\n")
        return name

    def _check_importable(self, folder: Path) -> None:
        paths = self._paths
        if paths.root.is_relative_to(folder) or any(
            folder.is_relative_to(inner) for inner in (paths.state_dir, paths.workspaces)
        ):
            raise InvalidPathError(
                f"{folder} holds the project or lies inside its state or slots; it cannot be imported.",
                details={"path": str(folder)},
                remedy="Pass a workspace name or slot, "
                "or a folder outside the project's .goldfish and slots.",
            )
        if not (folder / "pipeline.yaml").is_file() and not (folder / "pipelines").is_dir():
            raise InvalidArgumentError(
                f"{folder} is neither a workspace nor a folder with a pipeline (pipeline.yaml).",
                details={"path": str(folder)},
                remedy="Pass a workspace name, a slot, or a folder holding pipeline.yaml and modules/.",
            )

    @property
    def _imports_file(self) -> Path:
        return self._paths.state_dir / IMPORTS_FILE

    def _read_imports(self) -> dict[str, str]:
        try:
            data = json.loads(self._imports_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(key): value for key, value in data.items() if isinstance(value, str)}

    def _free_name(self, folder_name: str) -> str:
        """``folder_name`` made a valid workspace name, with ``-2``, ``-3``, ... when it is taken."""
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", folder_name).strip("-_")[:56] or "imported"
        for number in itertools.count(1):
            candidate = base if number == 1 else f"{base}-{number}"
            if candidate not in self._slots and self._rows.get(candidate) is None:
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def _mount_somewhere(self, name: str) -> tuple[str, bool]:
        """The slot holding workspace ``name`` and whether this call mounted it (in the first free slot)."""
        rows = self._rows
        mount = rows.mount_of_workspace(self._core.workspace(name).id)
        if mount is not None:
            return mount.slot, False
        for slot in self._slots:
            folder = self._paths.slot(slot)
            if rows.mount_of_slot(slot) is not None or (folder.is_dir() and any(folder.iterdir())):
                continue
            try:
                self._workspaces.mount(name, slot)
            except SlotOccupiedError:
                continue
            return slot, True
        raise SlotOccupiedError(
            f"Every slot is in use, so the folder cannot be brought into workspace '{name}'.",
            details={"workspace": name, "slots": self._slots},
            remedy="Hibernate a slot (the hibernate tool) or add a slot to `slots` in goldfish.yaml.",
        )
