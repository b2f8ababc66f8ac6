"""Where everything of a project lives on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CONFIG_FILENAME = "goldfish.yaml"
STATE_DIR = ".goldfish"
DB_FILENAME = "goldfish.db"
STATE_FILENAME = "STATE.md"


class Layout(Protocol):
    """The part of a project's config that places its folders (``GoldfishConfig`` has it)."""

    @property
    def dev_repo_path(self) -> str:
        """The dev repository, relative to the root."""

    @property
    def workspaces_dir(self) -> str:
        """The slots' folder, relative to the root."""


@dataclass(frozen=True)
class ProjectPaths:
    """Absolute paths of one project, derived from its root and config."""

    root: Path
    dev_repo: Path
    workspaces: Path

    @classmethod
    def of(cls, root: Path, config: Layout) -> ProjectPaths:
        """Paths for ``root`` under ``config``."""
        root = root.resolve()
        return cls(root=root, dev_repo=root / config.dev_repo_path, workspaces=root / config.workspaces_dir)

    @property
    def config_file(self) -> Path:
        """goldfish.yaml."""
        return self.root / CONFIG_FILENAME

    @property
    def state_dir(self) -> Path:
        """The hidden ``.goldfish`` folder."""
        return self.root / STATE_DIR

    @property
    def database(self) -> Path:
        """The SQLite database file."""
        return self.state_dir / DB_FILENAME

    @property
    def state_md(self) -> Path:
        """STATE.md at the project root."""
        return self.root / STATE_FILENAME

    @property
    def indexes(self) -> Path:
        """Private git index files, one per mounted slot."""
        return self.state_dir / "index"

    @property
    def locks(self) -> Path:
        """Lock files."""
        return self.state_dir / "locks"

    @property
    def logs(self) -> Path:
        """Server logs."""
        return self.state_dir / "logs"

    @property
    def data(self) -> Path:
        """The project's data folder (local sources are registered from here)."""
        return self.root / "data"

    @property
    def storage(self) -> Path:
        """Local artifact storage (run outputs and logs)."""
        return self.state_dir / "storage"

    @property
    def scratch(self) -> Path:
        """Per-attempt working folders of running stages."""
        return self.state_dir / "runs"

    @property
    def code_cache(self) -> Path:
        """The files of saved versions that stages ran, one folder per version (hardlinked into runs)."""
        return self.state_dir / "code"

    @property
    def venvs(self) -> Path:
        """Cached stage environments, one per requirements.txt hash."""
        return self.state_dir / "venvs"

    def slot(self, name: str) -> Path:
        """A slot folder."""
        return self.workspaces / name

    def slot_index(self, name: str) -> Path:
        """The private index of a slot."""
        return self.indexes / f"{name}.index"
