"""Put a fetched, checked and unpacked backup in place: into a new folder or over this project.

Then open the result's database (migrating it) and check it and its version store.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from goldfish.backups.archive import place_slot, place_state, put_storage
from goldfish.backups.layout import BUNDLE, DB_FILE, root_uri
from goldfish.backups.models import BackupCounts, RestoreInfo
from goldfish.config import load_config
from goldfish.db.backups import live_counts, rebase_uris
from goldfish.db.database import Database
from goldfish.paths import CONFIG_FILENAME, ProjectPaths
from goldfish.storage.factory import open_storage
from goldfish.workspaces.dev_repo import DevRepo


def restore_in_place(staging: Path, files: Path, paths: ProjectPaths, db: Database, repo: DevRepo) -> None:
    """Make this project what the staged backup holds (its slots are replaced too)."""
    db.replace_with(staging / DB_FILE)
    repo.restore_bundle(staging / BUNDLE)
    shutil.copyfile(staging / CONFIG_FILENAME, paths.config_file)
    config = load_config(paths.root)
    put_storage(files, open_storage(config, paths.storage))
    place_state(files, paths.state_dir)
    shutil.rmtree(paths.indexes, ignore_errors=True)  # slot indexes describe the old files
    for slot in config.slots:
        folder = paths.slot(slot)
        shutil.rmtree(folder, ignore_errors=True)
        place_slot(files, slot, folder)


def restore_into(staging: Path, files: Path, root: Path, old_root_uri: str) -> None:
    """Build a new project in ``root`` from the staged backup (``root`` is left empty on failure).

    ``file://`` URIs under the backed-up project's root (local outputs, registered data files)
    are pointed at ``root``: the old folder may be gone, which is why one restores.
    """
    existed = root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging / CONFIG_FILENAME, root / CONFIG_FILENAME)
        config = load_config(root)
        paths = ProjectPaths.of(root, config)
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging / DB_FILE, paths.database)
        if old_root_uri:
            rebase_uris(paths.database, old_root_uri, root_uri(root))
        DevRepo(paths.dev_repo).restore_bundle(staging / BUNDLE)
        put_storage(files, open_storage(config, paths.storage))
        place_state(files, paths.state_dir)
        for slot in config.slots:
            place_slot(files, slot, paths.slot(slot))
    except BaseException:
        for child in list(root.iterdir()) if root.is_dir() else []:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        if not existed:
            root.rmdir()
        raise


def check_restored(root: Path, backup_id: str, manifest: dict[str, Any], safety: str | None) -> RestoreInfo:
    """Open the restored project's database (migrating it) and check it and its versions."""
    config = load_config(root)
    paths = ProjectPaths.of(root, config)
    db = Database(paths.database)
    try:
        integrity = str(db.connection.execute("PRAGMA integrity_check").fetchone()[0])
        counts = live_counts(db)
    finally:
        db.close()
    problems = DevRepo(paths.dev_repo).fsck()
    return RestoreInfo(
        backup_id=backup_id,
        project_root=str(root),
        in_place=safety is not None,
        counts=BackupCounts(**counts),
        integrity_check=integrity,
        version_store_check="ok" if not problems else "; ".join(problems)[:2000],
        outputs_included=bool(manifest.get("include_outputs")),
        safety_backup_id=safety,
    )
