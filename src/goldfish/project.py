"""Project discovery and ``goldfish init``: the on-disk layout of a project."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from goldfish.errors import InvalidPathError, ProjectExistsError, ProjectNotFoundError
from goldfish.paths import CONFIG_FILENAME, ProjectPaths
from goldfish.validation import project_name

PROJECT_ENV = "GOLDFISH_PROJECT"


class InitResult(BaseModel):
    """What ``initialize_project`` made."""

    project_root: str
    project_name: str
    created: list[str] = Field(description="Paths created by this call (empty when all existed).")
    already_initialized: bool


def discover_project(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """Find the project root: ``explicit``, then ``$GOLDFISH_PROJECT``, then the nearest goldfish.yaml upward.

    Raises:
        ProjectNotFoundError: when none of them names a project.
    """
    for source, value in (("--project", explicit), (PROJECT_ENV, os.environ.get(PROJECT_ENV))):
        if value:
            root = Path(value).expanduser().resolve()
            if not (root / CONFIG_FILENAME).is_file():
                raise ProjectNotFoundError(
                    f"{source} points at {root}, which has no {CONFIG_FILENAME}.", details={"path": str(root)}
                )
            return root
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILENAME).is_file():
            return folder
    raise ProjectNotFoundError(
        f"No {CONFIG_FILENAME} in {start} or any folder above it.", details={"searched_from": str(start)}
    )


def _root_path(value: str) -> Path:
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 1024:
        raise InvalidPathError("project_root must be a folder path.", details={"field": "project_root"})
    root = Path(value).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidPathError(f"{root} exists and is not a folder.", details={"project_root": str(root)})
    if not root.parent.is_dir():
        raise InvalidPathError(
            f"The parent folder of {root} does not exist.",
            details={"project_root": str(root)},
            remedy="Create the parent folder first, or choose a path whose parent exists.",
        )
    return root


def initialize_project(root_value: str, name: str, from_existing: bool = False) -> InitResult:
    """Create (or complete) a project: goldfish.yaml, workspaces/, .goldfish/ with the database and dev repo.

    Idempotent for the same project; refuses to overwrite a goldfish.yaml of another project
    unless ``from_existing`` adopts it.
    """
    from goldfish.config import GoldfishConfig, parse_config, render_config  # noqa: PLC0415 - keep discovery light
    from goldfish.db.database import Database  # noqa: PLC0415
    from goldfish.workspaces.dev_repo import DevRepo  # noqa: PLC0415

    project_name(name)
    root = _root_path(root_value)
    config_file = root / CONFIG_FILENAME
    created: list[str] = []
    already = config_file.is_file()
    if already:
        config = parse_config(config_file.read_text(encoding="utf-8"), str(config_file))
        if config.project_name != name and not from_existing:
            raise ProjectExistsError(
                f"{root} already holds project '{config.project_name}'.",
                details={"project_root": str(root), "project_name": config.project_name},
            )
    else:
        config = GoldfishConfig(project_name=name)
        root.mkdir(exist_ok=True)
        config_file.write_text(render_config(config), encoding="utf-8")
        created.append(str(config_file))
    paths = ProjectPaths.of(root, config)
    for folder in (paths.state_dir, paths.workspaces, *(paths.slot(s) for s in config.slots), paths.logs):
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(str(folder))
    if not paths.database.exists():
        created.append(str(paths.database))
    Database(paths.database).close()
    if not (paths.dev_repo / "HEAD").exists():
        created.append(str(paths.dev_repo))
    DevRepo(paths.dev_repo).initialize()
    return InitResult(
        project_root=str(root),
        project_name=config.project_name,
        created=created,
        already_initialized=already and not created,
    )
