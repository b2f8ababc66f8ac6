"""Local files on the VM: safe reads, masked copies, the bundle, input paths, outputs, notes."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
from typing import BinaryIO

from .errors import AgentFailure, UnsafeFile

COPY_CHUNK = 1024 * 1024
BUNDLE_TOP_LEVEL = ("code", "config")

log = logging.getLogger("goldfish-agent")


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (never through a link, never a FIFO).

    Raises:
        FileNotFoundError: when it does not exist.
        UnsafeFile: when it is a symbolic link or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeFile(f"{path} cannot be read safely: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def mask_file(source: str, target: str, values: list[str]) -> None:
    """Copy ``source`` to ``target`` with every value replaced by ``***``, streaming.

    The last ``len(longest) - 1`` bytes of each chunk wait for the next, so a value split
    across two reads is still caught.
    """
    encoded = sorted({value.encode("utf-8") for value in values if value}, key=len, reverse=True)
    hold = max((len(value) for value in encoded), default=1) - 1
    pending = b""
    with open_regular(source) as src, open(target, "wb") as dst:
        while True:
            chunk = src.read(COPY_CHUNK)
            data = pending + chunk
            for value in encoded:
                data = data.replace(value, b"***")
            if not chunk:
                dst.write(data)
                return
            cut = max(0, len(data) - hold)
            dst.write(data[:cut])
            pending = data[cut:]


def bundle_member_path(member: tarfile.TarInfo) -> str:
    """The checked relative path of one bundle member ('' for the archive's own ``.``).

    Raises:
        AgentFailure: for absolute names, ``..``, links, devices and anything outside code/, config/.
    """
    name = member.name
    if not name or name.startswith("/") or "\x00" in name:
        raise AgentFailure(f"bundle member {name[:200]!r} has an absolute or odd name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise AgentFailure(f"bundle member {name[:200]!r} climbs out with '..'")
    if not (member.isfile() or member.isdir()):
        raise AgentFailure(f"bundle member {name[:200]!r} is a link or a special file")
    if parts and parts[0] not in BUNDLE_TOP_LEVEL:
        raise AgentFailure(f"bundle member {name[:200]!r} is outside code/ and config/")
    return "/".join(parts)


def safe_extract(archive: str, destination: str) -> int:
    """Extract a ``.tar.gz`` bundle into ``destination`` after checking every member; the file count.

    Raises:
        AgentFailure: when any member is refused (nothing is extracted then) or the archive is bad.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [(member, bundle_member_path(member)) for member in tar.getmembers()]
            for member, relative in members:
                if relative:
                    _extract_member(tar, member, os.path.join(destination, relative))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AgentFailure(f"the bundle cannot be extracted: {exc}") from exc
    return sum(1 for member, _ in members if member.isfile())


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> None:
    if member.isdir():
        os.makedirs(target, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise AgentFailure(f"bundle member {member.name[:200]!r} has no content")
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, COPY_CHUNK)
    os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


def relative_object_path(name: str, prefix: str) -> str:
    """The path under an input folder of object ``name`` listed under ``prefix`` ('' to skip it).

    Raises:
        AgentFailure: when the name would climb out of the folder.
    """
    relative = name[len(prefix) :]
    if not relative or relative.endswith("/"):
        return ""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise AgentFailure(f"object {name[:200]!r} cannot be staged as a file path")
    return relative


def output_files(path: str) -> list[tuple[str, str]]:
    """``(relative name, full path)`` of every file of one output (a file or a folder).

    Raises:
        UnsafeFile: for symbolic links or special files anywhere in it.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return [(os.path.basename(path), path)]
    if not stat.S_ISDIR(mode):
        raise UnsafeFile(f"output {os.path.basename(path)} is a link or a special file")
    found: list[tuple[str, str]] = []
    for folder, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            full = os.path.join(folder, name)
            entry = os.lstat(full).st_mode
            if stat.S_ISLNK(entry) or not (stat.S_ISREG(entry) or stat.S_ISDIR(entry)):
                raise UnsafeFile(f"output file {os.path.relpath(full, path)[:200]!r} is a link or special")
            if stat.S_ISREG(entry):
                found.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
    return sorted(found)


def read_exit_code(logs_dir: str) -> int | None:
    """The integer the stage wrapper left in ``logs_dir/exit_code.txt`` (None if none or bad)."""
    try:
        with open_regular(os.path.join(logs_dir, "exit_code.txt")) as handle:
            return int(handle.read(64).decode("ascii").strip())
    except (OSError, AgentFailure, ValueError, UnicodeDecodeError):
        return None


def remove_path(path: str) -> None:
    """Remove a file, a link or a whole folder, if there."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def append_note(path: str, text: str) -> None:
    """Append ``text`` to a log file the container may own (never through a link)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        log.warning("could not append to %s: %s", path, exc)
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, text.encode("utf-8", "replace"))
    finally:
        os.close(fd)


# -- commands ----------------------------------------------------------------------------------
