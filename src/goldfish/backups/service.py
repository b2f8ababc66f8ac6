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
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goldfish import __version__
from goldfish.backups.models import (
    BackupCorruptError,
    BackupCounts,
    BackupInfo,
    BackupNotFoundError,
    RestoreInfo,
    RunsActiveError,
)
from goldfish.config import CONFIG_FILENAME, GoldfishConfig, load_config
from goldfish.db.backups import live_counts, rebase_uris, snapshot_facts
from goldfish.db.database import Database, schema_version
from goldfish.db.runs import RunRepository
from goldfish.errors import InvalidArgumentError, InvalidPathError, WorkspaceBusyError
from goldfish.hashing import hash_file
from goldfish.locks import file_lock
from goldfish.paths import ProjectPaths
from goldfish.storage.factory import open_storage
from goldfish.storage.gcs import GcsStorage
from goldfish.storage.local import LocalStorage
from goldfish.storage.protocol import Storage
from goldfish.timeutil import now_iso, parse_iso
from goldfish.validation import page
from goldfish.workspaces.dev_repo import DevRepo

log = logging.getLogger("goldfish.backups")

Progress = Callable[[int, int, str], None]
"""``(step, steps, message)`` as a backup or restore advances."""
CREATE_STEPS = 5
RESTORE_STEPS = 5

BACKUP_ID = re.compile(r"^bk-\d{8}-\d{6}-[0-9a-f]{6}$")
MANIFEST = "manifest.json"
DB_FILE = "goldfish.db"
BUNDLE = "versions.bundle"
FILES = "files.tar.gz"
PARTS = (DB_FILE, BUNDLE, CONFIG_FILENAME, FILES)
FORMAT = 1
LOCK_SECONDS = 600.0
SKIPPED_NAMES = frozenset({"__pycache__", ".DS_Store"})
STATE_FILES = ("imports.json",)  # small files of .goldfish kept with the project (never secrets.env)


def open_destination(config: GoldfishConfig, root: Path) -> tuple[Storage, str]:
    """The store ``backup.destination`` names, and how to show it (a path or ``gs://`` URI)."""
    destination = config.backup.destination
    if destination.startswith("gs://"):
        bucket, _, prefix = destination[5:].partition("/")
        return GcsStorage(bucket, prefix, config.gce.project_id), destination.rstrip("/")
    path = Path(destination).expanduser()
    folder = path if path.is_absolute() else root / path
    return LocalStorage(folder), str(folder.resolve())


def new_backup_id() -> str:
    """``bk-YYYYMMDD-HHMMSS-<6 hex>``: sorts by creation time."""
    return f"bk-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _check_id(backup_id: str) -> str:
    if not isinstance(backup_id, str) or not BACKUP_ID.fullmatch(backup_id):
        raise InvalidArgumentError(
            f"{str(backup_id)[:80]!r} is not a backup id (bk-YYYYMMDD-HHMMSS-xxxxxx).",
            details={"field": "backup_id"},
            remedy="Use a backup_id from list_backups.",
        )
    return backup_id


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
            self._write_files(staging / FILES, include_outputs)
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
                "project_root_uri": _root_uri(self._paths.root),
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
        return _info(manifest, _location(location, backup_id))

    def _staging(self) -> Path:
        scratch = self._paths.state_dir / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="backup-", dir=scratch))

    def _write_files(self, target: Path, include_outputs: bool) -> None:
        """Run logs and metrics (outputs too when asked) and the slot folders, as one archive."""
        with tarfile.open(target, "w:gz", compresslevel=1) as archive:
            for key in self._storage.list_keys("runs"):
                parts = key.split("/")
                kind = parts[2] if len(parts) > 3 else ""
                if kind == "logs" or (include_outputs and kind == "outputs"):
                    self._add_key(archive, key)
            for slot in self._config.slots:
                folder = self._paths.slot(slot)
                if folder.is_dir():
                    archive.add(folder, arcname=f"slots/{slot}", filter=_skip_clutter)
            for name in STATE_FILES:
                path = self._paths.state_dir / name
                if path.is_file():
                    archive.add(path, arcname=f"state/{name}")

    def _add_key(self, archive: tarfile.TarFile, key: str) -> None:
        local = self._storage.local_path(key)
        data = local.read_bytes() if local is not None and local.is_file() else self._storage.read_bytes(key)
        if data is None:  # deleted since it was listed
            return
        member = tarfile.TarInfo(f"storage/{key}")
        member.size = len(data)
        member.mtime = int(time.time())
        member.mode = 0o644
        archive.addfile(member, io.BytesIO(data))

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
            manifest = _read_manifest(store, backup_id)
            if manifest is not None:
                infos.append(_info(manifest, _location(location, backup_id)))
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
        rules = self._config.backup
        if rules.every_runs is None and rules.every_minutes is None:
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
        _check_id(backup_id)
        root = self._target(target) if target is not None else None
        store, _ = self.destination()
        manifest = _read_manifest(store, backup_id)
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
            _fetch(store, backup_id, manifest, staging)
            report(1, RESTORE_STEPS, "unpacking run files and slots")
            files = _unpack(staging)  # everything is checked before the project is touched
            if root is None:
                report(2, RESTORE_STEPS, "backing up the current state first")
                safety = self.create(f"Before restoring {backup_id} in place", automatic=True).backup_id
                report(3, RESTORE_STEPS, "restoring in place")
                self._restore_in_place(staging, files)
                project = self._paths.root
            else:
                report(3, RESTORE_STEPS, f"building the project in {root}")
                _restore_into(staging, files, root, str(manifest.get("project_root_uri") or ""))
                project = root
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        report(4, RESTORE_STEPS, "checking the database and the versions")
        checked = _checked(project, backup_id, manifest, safety)
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

    def _restore_in_place(self, staging: Path, files: Path) -> None:
        """Make this project what the staged backup holds (its slots are replaced too)."""
        paths = self._paths
        self._db.replace_with(staging / DB_FILE)
        self._repo.restore_bundle(staging / BUNDLE)
        shutil.copyfile(staging / CONFIG_FILENAME, paths.config_file)
        config = load_config(paths.root)
        _put_storage(files, open_storage(config, paths.storage))
        _place_state(files, paths.state_dir)
        shutil.rmtree(paths.indexes, ignore_errors=True)  # slot indexes describe the old files
        for slot in config.slots:
            folder = paths.slot(slot)
            shutil.rmtree(folder, ignore_errors=True)
            _place_slot(files, slot, folder)


# -- helpers ----------------------------------------------------------------------------------
def _quiet(step: int, steps: int, message: str) -> None:
    del step, steps, message


def _skip_clutter(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(member.name).name in SKIPPED_NAMES else member


def _location(base: str, backup_id: str) -> str:
    return f"{base}/{backup_id}"


def _read_manifest(store: Storage, backup_id: str) -> dict[str, Any] | None:
    data = store.read_bytes(f"{backup_id}/{MANIFEST}")
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def _info(manifest: dict[str, Any], location: str) -> BackupInfo:
    return BackupInfo(
        backup_id=manifest["backup_id"],
        created=manifest["created"],
        reason=manifest.get("reason", ""),
        size_bytes=int(manifest.get("size_bytes", 0)),
        location=location,
        counts=BackupCounts(**manifest["counts"]),
        include_outputs=bool(manifest.get("include_outputs")),
        automatic=bool(manifest.get("automatic")),
    )


def _fetch(store: Storage, backup_id: str, manifest: dict[str, Any], staging: Path) -> None:
    """Download every part and check it against the manifest's hash."""
    files = manifest.get("files") or {}
    for name in PARTS:
        local = staging / name
        expected = files.get(name) or {}
        if not store.get_file(f"{backup_id}/{name}", local) or hash_file(local)[0] != expected.get("sha256"):
            raise BackupCorruptError(
                f"Backup {backup_id} is damaged: {name} is missing or differs from its manifest.",
                details={"backup_id": backup_id, "file": name},
            )


def _unpack(staging: Path) -> Path:
    folder = staging / "files"
    folder.mkdir()
    try:
        with tarfile.open(staging / FILES, "r:gz") as archive:
            archive.extractall(folder, filter=_inside)  # noqa: S202 - every member passes _inside
    except (tarfile.TarError, OSError) as exc:
        raise BackupCorruptError(
            f"The archive of run files cannot be unpacked safely: {exc}.", details={"file": FILES}
        ) from None
    return folder


def _inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Like tarfile's ``data`` filter, without a realpath per member.

    Names and link targets must stay relative and below the archive root; only files, folders
    and symbolic links are extracted, with plain permissions.
    """
    del dest
    parts = Path(member.name).parts
    safe = not member.name.startswith("/") and ".." not in parts
    safe = safe and (
        member.isfile() or member.isdir() or (member.issym() and _link_stays(parts, member.linkname))
    )
    if not safe:
        raise tarfile.FilterError(f"refusing {member.name!r} from a backup archive")
    mode = (member.mode or 0o644) & 0o755
    return member.replace(mode=mode, deep=False)


def _link_stays(parts: tuple[str, ...], link: str) -> bool:
    """True when a link at ``parts`` pointing to ``link`` names a place below the archive root."""
    if link.startswith("/"):
        return False
    where = list(parts[:-1])
    for part in Path(link).parts:
        if part == "..":
            if not where:
                return False
            where.pop()
        elif part != ".":
            where.append(part)
    return True


def _put_storage(files: Path, storage: Storage) -> None:
    """Put the archived run files back: a run's folder whole when the store lacks it, else file by file."""
    runs = files / "storage" / "runs"
    if not runs.is_dir():
        return
    if not storage.exists("runs"):  # a new project: every run folder at once
        storage.put_dir(runs, "runs", move=True)
        return
    for folder in sorted(runs.iterdir()):
        key = f"runs/{folder.name}"
        if not storage.exists(key):
            storage.put_dir(folder, key, move=True)
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                storage.put_file(path, f"{key}/{path.relative_to(folder).as_posix()}")


def _place_state(files: Path, state_dir: Path) -> None:
    for name in STATE_FILES:
        saved = files / "state" / name
        if saved.is_file():
            shutil.copyfile(saved, state_dir / name)


def _place_slot(files: Path, slot: str, folder: Path) -> None:
    saved = files / "slots" / slot
    if saved.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(saved), str(folder))
    else:
        folder.mkdir(parents=True, exist_ok=True)


def _root_uri(root: Path) -> str:
    return root.resolve().as_uri().rstrip("/") + "/"


def _restore_into(staging: Path, files: Path, root: Path, old_root_uri: str) -> None:
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
            rebase_uris(paths.database, old_root_uri, _root_uri(root))
        DevRepo(paths.dev_repo).restore_bundle(staging / BUNDLE)
        _put_storage(files, open_storage(config, paths.storage))
        _place_state(files, paths.state_dir)
        for slot in config.slots:
            _place_slot(files, slot, paths.slot(slot))
    except BaseException:
        for child in list(root.iterdir()) if root.is_dir() else []:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        if not existed:
            root.rmdir()
        raise


def _checked(root: Path, backup_id: str, manifest: dict[str, Any], safety: str | None) -> RestoreInfo:
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
