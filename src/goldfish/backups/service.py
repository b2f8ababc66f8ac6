"""Backups of a project and restores from them.

A backup is a folder ``<backup_id>/`` at ``backup.destination`` (a local folder or a
``gs://bucket/prefix``) holding:

- ``goldfish.db``: the database through SQLite's online backup API (consistent while writers go on);
- ``versions.bundle``: every ref of the version store (workspaces, version tags, archived
  workspaces) with its history, as one git bundle;
- ``goldfish.yaml``;
- ``files.tar.gz``: every run's logs and metrics files (outputs with ``include_outputs``) and the
  slot folders as they are (unsaved edits included);
- ``manifest.json``, written last: counts, file hashes and sizes. A folder without it is an
  unfinished backup and is never listed.

The database is copied before the version store: a version is saved in the order file → tag →
database row, so every version the copied database knows is already in the store when the bundle
is written (a newer tag without its row is repaired by startup reconciliation, as after a crash).
Secrets (``.goldfish/secrets.env``, a run's ``secrets.json``) are never read.

This module orders the steps; ``layout.py`` says what a backup is at its destination,
``archive.py`` writes and unpacks ``files.tar.gz``, ``restore.py`` puts a backup in place.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goldfish import __version__
from goldfish.backups.archive import unpack, write_files
from goldfish.backups.layout import (
    BACKUP_ID,
    BUNDLE,
    DB_FILE,
    FILES,
    FORMAT,
    MANIFEST,
    PARTS,
    backup_info,
    backup_location,
    check_id,
    fetch,
    new_backup_id,
    open_destination,
    read_manifest,
    root_uri,
)
from goldfish.backups.models import BackupInfo, BackupNotFoundError, RestoreInfo, RunsActiveError
from goldfish.backups.restore import check_restored, restore_in_place, restore_into
from goldfish.config import GoldfishConfig
from goldfish.db.backups import live_counts, snapshot_facts
from goldfish.db.database import Database, schema_version
from goldfish.db.runs import RunRepository
from goldfish.errors import InvalidArgumentError, InvalidPathError, WorkspaceBusyError
from goldfish.hashing import hash_file
from goldfish.locks import file_lock
from goldfish.paths import CONFIG_FILENAME, ProjectPaths
from goldfish.storage.protocol import Storage
from goldfish.timeutil import now_iso, parse_iso
from goldfish.validation import page
from goldfish.workspaces.dev_repo import DevRepo

log = logging.getLogger("goldfish.backups")

Progress = Callable[[int, int, str], None]
"""``(step, steps, message)`` as a backup or restore advances."""
CREATE_STEPS = 5
RESTORE_STEPS = 5

LOCK_SECONDS = 600.0


class BackupService:
    """Creates, lists and restores backups of one project.

    Args:
        config: The project's configuration.
        paths: The project's paths.
        db: The live database.
        repo: The version store.
        runs: Run rows (to refuse an in-place restore while runs are active).
        storage: The run artifact store (logs, metrics, outputs).
    """

    def __init__(
        self,
        config: GoldfishConfig,
        paths: ProjectPaths,
        db: Database,
        repo: DevRepo,
        runs: RunRepository,
        storage: Storage,
    ):
        self._config = config
        self._paths = paths
        self._db = db
        self._repo = repo
        self._runs = runs
        self._storage = storage
        self._auto: threading.Thread | None = None
        self._auto_guard = threading.Lock()

    def destination(self) -> tuple[Storage, str]:
        """The backup store and its display form."""
        return open_destination(self._config, self._paths.root)

    # -- create -------------------------------------------------------------------------------
    def create(
        self,
        reason: str,
        include_outputs: bool = False,
        automatic: bool = False,
        progress: Progress | None = None,
    ) -> BackupInfo:
        """Take a backup now (one at a time per project)."""
        with file_lock(self._paths.locks / "backup.lock", "Another backup", LOCK_SECONDS):
            info = self._create(reason, include_outputs, automatic, progress or _quiet)
        self.prune()
        return info

    def _create(self, reason: str, include_outputs: bool, automatic: bool, progress: Progress) -> BackupInfo:
        store, location = self.destination()
        backup_id = new_backup_id()
        staging = self._staging()
        try:
            progress(0, CREATE_STEPS, "copying the database (online backup)")
            self._db.snapshot(staging / DB_FILE)
            counts, version, _ = snapshot_facts(staging / DB_FILE)
            progress(1, CREATE_STEPS, "bundling every version")
            self._repo.bundle(staging / BUNDLE)
            shutil.copyfile(self._paths.config_file, staging / CONFIG_FILENAME)
            progress(2, CREATE_STEPS, "archiving run logs, metrics and slots")
            write_files(staging / FILES, self._storage, self._paths, self._config.slots, include_outputs)
            progress(3, CREATE_STEPS, "hashing")
            files: dict[str, dict[str, Any]] = {}
            for name in PARTS:
                digest, size = hash_file(staging / name)
                files[name] = {"sha256": digest, "size_bytes": size}
            manifest = {
                "format": FORMAT,
                "backup_id": backup_id,
                "created": now_iso(),
                "reason": reason,
                "automatic": automatic,
                "include_outputs": include_outputs,
                "goldfish_version": __version__,
                "schema_version": version,
                "project_name": self._config.project_name,
                "project_root_uri": root_uri(self._paths.root),
                "counts": counts,
                "files": files,
                "size_bytes": sum(int(item["size_bytes"]) for item in files.values()),
            }
            progress(4, CREATE_STEPS, f"writing to {location}")
            for name in PARTS:
                store.put_file(staging / name, f"{backup_id}/{name}")
            store.write_bytes(f"{backup_id}/{MANIFEST}", json.dumps(manifest, indent=2).encode("utf-8"))
            progress(CREATE_STEPS, CREATE_STEPS, f"backup {backup_id} done")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return backup_info(manifest, backup_location(location, backup_id))

    def _staging(self) -> Path:
        scratch = self._paths.state_dir / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="backup-", dir=scratch))

    # -- list and prune -----------------------------------------------------------------------
    def listing(self, limit: int, offset: int) -> tuple[list[BackupInfo], int]:
        """Complete backups, newest first."""
        limit, offset = page(limit, offset)
        found = self._all()
        return found[offset : offset + limit], len(found)

    def _all(self) -> list[BackupInfo]:
        store, location = self.destination()
        infos = []
        for key in store.list_keys(""):
            backup_id, _, name = key.partition("/")
            if name != MANIFEST or not BACKUP_ID.fullmatch(backup_id):
                continue
            manifest = read_manifest(store, backup_id)
            if manifest is not None:
                infos.append(backup_info(manifest, backup_location(location, backup_id)))
        return sorted(infos, key=lambda info: (info.created, info.backup_id), reverse=True)

    def prune(self) -> list[str]:
        """Delete the backups beyond ``backup.keep`` (oldest first); returns their ids."""
        keep = self._config.backup.keep
        if keep is None:
            return []
        store, _ = self.destination()
        doomed = [info.backup_id for info in self._all()[keep:]]
        for backup_id in doomed:
            store.delete(f"{backup_id}/{MANIFEST}")  # unlisted first, so a half-deleted one never shows
            store.delete(backup_id)
        return doomed

    # -- automatic backups --------------------------------------------------------------------
    def due(self) -> str | None:
        """Why an automatic backup is due now (``backup.every_runs``/``every_minutes``), else None."""
        rules = self._config.backup
        if rules.every_runs is None and rules.every_minutes is None:
            return None
        now = live_counts(self._db)
        latest = next(iter(self._all()), None)
        before: dict[str, int] = latest.counts.model_dump() if latest is not None else {}
        new_runs = now["pipeline_runs"] - int(before.get("pipeline_runs", 0))
        if rules.every_runs is not None and new_runs >= rules.every_runs:
            return f"Automatic backup after {new_runs} new run(s) (backup.every_runs)"
        changed = any(value != before.get(key, 0) for key, value in now.items())
        if rules.every_minutes is not None and changed:
            minutes = (datetime.now(UTC) - parse_iso(latest.created)).total_seconds() / 60 if latest else None
            if minutes is None or minutes >= rules.every_minutes:
                return "Automatic backup (backup.every_minutes)"
        return None

    def auto(self) -> BackupInfo | None:
        """Take an automatic backup if one is due and no other backup is under way."""
        try:
            with file_lock(self._paths.locks / "backup-auto.lock", "An automatic backup", 0.0):
                why = self.due()
                return self.create(why, automatic=True) if why else None
        except WorkspaceBusyError:
            return None

    def schedule_auto(self) -> None:
        """Check :meth:`auto` on a background thread (at most one at a time in this process)."""
        if not self._config.backup.automatic:
            return
        with self._auto_guard:
            if self._auto is not None and self._auto.is_alive():
                return
            self._auto = threading.Thread(target=self._auto_quietly, name="goldfish-auto-backup")
            self._auto.start()

    def _auto_quietly(self) -> None:
        try:
            self.auto()
        except Exception:  # an automatic backup must never fail the run that triggered it
            log.exception("automatic backup failed")

    def wait_auto(self) -> None:
        """Wait for an automatic backup under way in this process."""
        thread = self._auto
        if thread is not None:
            thread.join()

    # -- restore ------------------------------------------------------------------------------
    def restore(self, backup_id: str, target: str | None, progress: Progress | None = None) -> RestoreInfo:
        """Restore into ``target`` (an empty or missing folder), or in place when ``target`` is None."""
        report = progress or _quiet
        check_id(backup_id)
        root = self._target(target) if target is not None else None
        store, _ = self.destination()
        manifest = read_manifest(store, backup_id)
        if manifest is None:
            raise BackupNotFoundError(
                f"No complete backup {backup_id} at {self._config.backup.destination}.",
                details={"backup_id": backup_id, "destination": self._config.backup.destination},
            )
        if int(manifest.get("schema_version", 0)) > schema_version():
            raise InvalidArgumentError(
                f"Backup {backup_id} was written by a newer Goldfish ({manifest.get('goldfish_version')}).",
                details={"backup_id": backup_id, "schema_version": manifest.get("schema_version")},
                remedy="Upgrade Goldfish, then restore again.",
            )
        safety = None
        if root is None:
            self._refuse_if_runs_active()
        staging = self._staging()
        try:
            report(0, RESTORE_STEPS, f"fetching and checking {backup_id}")
            fetch(store, backup_id, manifest, staging)
            report(1, RESTORE_STEPS, "unpacking run files and slots")
            files = unpack(staging)  # everything is checked before the project is touched
            if root is None:
                report(2, RESTORE_STEPS, "backing up the current state first")
                safety = self.create(f"Before restoring {backup_id} in place", automatic=True).backup_id
                report(3, RESTORE_STEPS, "restoring in place")
                restore_in_place(staging, files, self._paths, self._db, self._repo)
                project = self._paths.root
            else:
                report(3, RESTORE_STEPS, f"building the project in {root}")
                restore_into(staging, files, root, str(manifest.get("project_root_uri") or ""))
                project = root
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        report(4, RESTORE_STEPS, "checking the database and the versions")
        checked = check_restored(project, backup_id, manifest, safety)
        report(RESTORE_STEPS, RESTORE_STEPS, f"restored {backup_id}")
        return checked

    def _target(self, target: str) -> Path:
        if not isinstance(target, str) or not target.strip() or "\x00" in target:
            raise InvalidPathError("target must be a folder path.", details={"field": "target"})
        root = Path(target).expanduser().resolve()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise InvalidPathError(
                f"{root} is not an empty folder; a backup is restored into an empty (or new) folder only.",
                details={"field": "target", "target": str(root)},
                remedy="Pass a new or empty folder, or leave target out to restore in place.",
            )
        if root.is_relative_to(self._paths.state_dir):
            raise InvalidPathError(
                f"{root} lies inside this project's state folder.",
                details={"field": "target", "target": str(root)},
                remedy="Pass a folder outside the project.",
            )
        return root

    def _refuse_if_runs_active(self) -> None:
        active = self._runs.active_pipeline_runs()
        if active:
            raise RunsActiveError(
                f"{len(active)} run(s) are still active; restoring in place would pull the project "
                "out from under them.",
                details={"runs": [run.id for run in active[:20]], "total": len(active)},
            )


# -- helpers ----------------------------------------------------------------------------------
def _quiet(step: int, steps: int, message: str) -> None:
    del step, steps, message
