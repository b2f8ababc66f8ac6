"""``files.tar.gz`` of a backup: run logs and metrics (outputs when asked), slot folders, state files.

Written from the project's run store and folders, unpacked with every member checked (names and
links stay below the archive root), and put back into a project.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

from goldfish.backups.layout import FILES
from goldfish.backups.models import BackupCorruptError
from goldfish.paths import ProjectPaths
from goldfish.storage.protocol import Storage

SKIPPED_NAMES = frozenset({"__pycache__", ".DS_Store"})
STATE_FILES = ("imports.json",)  # small files of .goldfish kept with the project (never secrets.env)


def write_files(
    target: Path, storage: Storage, paths: ProjectPaths, slots: list[str], include_outputs: bool
) -> None:
    """Run logs and metrics (outputs too when asked), the slot folders and state files, as one archive."""
    with tarfile.open(target, "w:gz", compresslevel=1) as archive:
        for key in storage.list_keys("runs"):
            parts = key.split("/")
            kind = parts[2] if len(parts) > 3 else ""
            if kind == "logs" or (include_outputs and kind == "outputs"):
                _add_key(archive, storage, key)
        for slot in slots:
            folder = paths.slot(slot)
            if folder.is_dir():
                archive.add(folder, arcname=f"slots/{slot}", filter=_skip_clutter)
        for name in STATE_FILES:
            path = paths.state_dir / name
            if path.is_file():
                archive.add(path, arcname=f"state/{name}")


def _add_key(archive: tarfile.TarFile, storage: Storage, key: str) -> None:
    local = storage.local_path(key)
    data = local.read_bytes() if local is not None and local.is_file() else storage.read_bytes(key)
    if data is None:  # deleted since it was listed
        return
    member = tarfile.TarInfo(f"storage/{key}")
    member.size = len(data)
    member.mtime = int(time.time())
    member.mode = 0o644
    archive.addfile(member, io.BytesIO(data))


def _skip_clutter(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(member.name).name in SKIPPED_NAMES else member


def unpack(staging: Path) -> Path:
    """Unpack the staged files archive into ``staging/files`` (every member checked first); return it."""
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


def put_storage(files: Path, storage: Storage) -> None:
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


def place_state(files: Path, state_dir: Path) -> None:
    """Put the archived small state files back into ``state_dir``."""
    for name in STATE_FILES:
        saved = files / "state" / name
        if saved.is_file():
            shutil.copyfile(saved, state_dir / name)


def place_slot(files: Path, slot: str, folder: Path) -> None:
    """Move the archived folder of ``slot`` to ``folder`` (an empty one when none was archived)."""
    saved = files / "slots" / slot
    if saved.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(saved), str(folder))
    else:
        folder.mkdir(parents=True, exist_ok=True)
