"""GCS storage: run artifacts in a Google Cloud Storage bucket, under an optional prefix.

Objects are named ``<prefix>/<key>``; the Google client comes from ``gcs_adaptor`` on first use,
so importing this module stays cheap (the server's cold start depends on it).
``STORAGE_EMULATOR_HOST`` points the client at a local emulator with anonymous credentials;
otherwise application default credentials are used. Library exceptions become
:class:`goldfish.errors.StorageError` here.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from goldfish.errors import GoldfishError, InvalidArgumentError, InvalidPathError, StorageError
from goldfish.storage.gcs_adaptor import client as gcs_client
from goldfish.storage.gcs_adaptor import client_errors, crc32c_extend

RESUMABLE_THRESHOLD = 8 * 1024 * 1024
"""Files larger than this (bytes) are sent as a chunked resumable upload."""
UPLOAD_CHUNK_SIZE = 8 * 1024 * 1024
"""Bytes per resumable upload request; GCS requires a multiple of 256 KiB."""
_HASH_BLOCK = 1024 * 1024
_BAD_SEGMENTS = {"", ".", ".."}


def clean_key(key: str) -> str:
    """``key`` without a trailing ``/``; refuses absolute keys and ``.``/``..``/empty segments.

    Args:
        key: A ``/``-separated storage key; ``""`` names the store's root.

    Returns:
        The key in its one canonical spelling.

    Raises:
        InvalidPathError: The key is absolute, leaves the root or has an empty segment.
    """
    stripped = key.rstrip("/")
    if not stripped:
        if key:
            raise InvalidPathError(f"storage key {key!r} is absolute", details={"key": key})
        return ""
    if "\x00" in stripped or any(part in _BAD_SEGMENTS for part in stripped.split("/")):
        raise InvalidPathError(f"storage key {key!r} leaves the storage root", details={"key": key})
    return stripped


def crc32c_of(path: Path) -> str:
    """The CRC32C of a file as GCS reports it (base64 of the big-endian 4 bytes)."""
    crc = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            crc = crc32c_extend(crc, block)
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def _refuse_unless_regular(path: Path, local: Path) -> None:
    if path.is_symlink():
        raise InvalidPathError(
            f"{path.relative_to(local).as_posix()} is a symbolic link; links are never uploaded",
            details={"path": str(path)},
            remedy="Replace the link with a copy of the file it points to.",
        )
    if not (path.is_file() or path.is_dir()):
        raise InvalidPathError(
            f"{path.relative_to(local).as_posix()} is not a regular file or folder",
            details={"path": str(path)},
        )


def local_files(local: Path) -> dict[str, Path]:
    """Every regular file under the folder ``local`` by its ``/``-separated relative path.

    Raises:
        InvalidPathError: ``local`` is not a folder, or holds a symlink or a special file.
    """
    if local.is_symlink() or not local.is_dir():
        raise InvalidPathError(f"{local} is not a folder", details={"path": str(local)})
    found: dict[str, Path] = {}
    for current, dirs, names in os.walk(local):
        for entry in [*dirs, *names]:
            _refuse_unless_regular(Path(current) / entry, local)
        for name in names:
            path = Path(current) / name
            found[path.relative_to(local).as_posix()] = path
    return found


def local_target(local: Path, relative: str) -> Path:
    """``local / relative`` for an object's name below a downloaded folder.

    Raises:
        InvalidPathError: ``relative`` has a ``..``, ``.`` or empty segment, or is absolute (a name
            like ``sig//etc/x``), so writing it could leave ``local``.
    """
    parts = relative.split("/")
    if "\x00" in relative or any(part in _BAD_SEGMENTS for part in parts):
        raise InvalidPathError(
            f"stored object {relative!r} would be written outside {local}",
            details={"object": relative},
            remedy="Remove or rename the object in the bucket; it cannot be downloaded safely.",
        )
    return local.joinpath(*PurePosixPath(relative).parts)


@dataclass(frozen=True)
class _Failure:
    reason: str
    message: str
    remedy: str


def _bucket_not_found(bucket: str) -> _Failure:
    return _Failure(
        "bucket_not_found",
        f"The GCS bucket '{bucket}' does not exist.",
        "Create the bucket, or set storage.gcs.bucket in goldfish.yaml to an existing one.",
    )


def _error(failure: _Failure, bucket: str, cause: str) -> StorageError:
    details = {"bucket": bucket, "reason": failure.reason, "cause": cause[:500]}
    return StorageError(failure.message, details=details, remedy=failure.remedy)


def _failures(bucket: str) -> list[tuple[tuple[type[BaseException], ...], _Failure]]:
    kinds = client_errors()
    return [
        (
            kinds.access_denied,
            _Failure(
                "access_denied",
                f"Access to the GCS bucket '{bucket}' was refused.",
                "Give the credentials in use (application default credentials or the VM's service "
                "account) read and write access to the bucket's objects (roles/storage.objectAdmin).",
            ),
        ),
        (
            kinds.no_credentials,
            _Failure(
                "no_credentials",
                "No Google Cloud credentials were found to reach GCS storage.",
                "Run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS) "
                "and call again.",
            ),
        ),
        (kinds.not_found, _bucket_not_found(bucket)),
        (
            kinds.unreachable,
            _Failure(
                "unreachable",
                f"GCS could not be reached for the bucket '{bucket}'.",
                "Check the network (and STORAGE_EMULATOR_HOST when using an emulator), then call again.",
            ),
        ),
    ]


def storage_error(error: BaseException, bucket: str) -> StorageError | None:
    """The :class:`StorageError` for a Google client exception, or None when it is not one we map.

    Args:
        error: What the client raised.
        bucket: The bucket the call was about (named in the message and details).

    Returns:
        A structured error whose ``details.reason`` is ``access_denied``, ``no_credentials``,
        ``bucket_not_found`` or ``unreachable``; None for anything else (re-raise it as is).
    """
    if isinstance(error, GoldfishError):
        return None
    for kinds, failure in _failures(bucket):
        if isinstance(error, kinds):
            return _error(failure, bucket, str(error))
    return None


class GcsStorage:
    """Keys are object names below ``prefix`` in ``bucket``.

    Args:
        bucket: Bucket name, without ``gs://``.
        prefix: Folder inside the bucket holding every key (``""``: the bucket's root).
        project: Google Cloud project of the client (the emulator gets ``goldfish-local`` without one).
    """

    scheme = "gs"

    def __init__(self, bucket: str, prefix: str = "", project: str | None = None):
        if not bucket or "/" in bucket:
            raise InvalidArgumentError(f"{bucket!r} is not a bucket name", details={"bucket": bucket})
        self.bucket = bucket
        self.prefix = clean_key(prefix.strip("/"))
        self.project = project
        self._bucket_seen = False

    @cached_property
    def client(self) -> Any:
        """The ``google.cloud.storage.Client``, created on first use (anonymous on an emulator)."""
        return gcs_client(self.project)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            mapped = storage_error(error, self.bucket)
            if mapped is None:
                raise
            raise mapped from error

    def _bucket(self) -> Any:
        return self.client.bucket(self.bucket)

    def _ensure_bucket(self) -> None:
        """Raise when the bucket is missing (checked once: a missing object and bucket both read 404)."""
        if self._bucket_seen:
            return
        try:
            found = self._bucket().exists()
        except client_errors().forbidden:
            found = True  # object access without bucket metadata access: the bucket is there
        if not found:
            raise _error(_bucket_not_found(self.bucket), self.bucket, "the bucket lookup found nothing")
        self._bucket_seen = True

    def _name(self, key: str) -> str:
        """The object name of a file key (never the root)."""
        name = self._name_or_root(key)
        if name == self.prefix:
            raise InvalidPathError("the storage root is not a file key", details={"key": key})
        return name

    def _name_or_root(self, key: str) -> str:
        return "/".join(part for part in (self.prefix, clean_key(key)) if part)

    def _folder(self, key: str) -> str:
        """The listing prefix of everything under the folder ``key`` (``""``: the whole bucket)."""
        name = self._name_or_root(key)
        return f"{name}/" if name else ""

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _names_under(self, folder: str) -> list[tuple[str, str | None]]:
        """(name, crc32c) of each object below ``folder``, folder placeholders left out."""
        blobs = self.client.list_blobs(self.bucket, prefix=folder)
        return [(blob.name, blob.crc32c) for blob in blobs if not blob.name.endswith("/")]

    def uri(self, key: str) -> str:
        """``gs://bucket/prefix/key``."""
        name = self._name_or_root(key)
        return f"gs://{self.bucket}/{name}" if name else f"gs://{self.bucket}"

    def key_of(self, uri: str) -> str | None:
        """The key a ``gs://`` URI names in this bucket and prefix (``""``: the root), else None."""
        head = f"gs://{self.bucket}"
        if uri != head and not uri.startswith(head + "/"):
            return None
        name = uri[len(head) + 1 :].rstrip("/")  # the object name ("" for the bucket itself)
        if self.prefix:
            if name != self.prefix and not name.startswith(self.prefix + "/"):
                return None
            name = name[len(self.prefix) + 1 :]
        try:
            return clean_key(name)
        except InvalidPathError:
            return None

    def exists(self, key: str) -> bool:
        """True when ``key`` is an object or a folder holding objects."""
        with self._errors():
            if clean_key(key) and self._bucket().blob(self._name(key)).exists():
                return True
            blobs = self.client.list_blobs(self.bucket, prefix=self._folder(key), max_results=1)
            return any(True for _ in blobs)

    def put_dir(self, local: Path, key: str, *, move: bool = False) -> None:
        """Make the folder ``key`` hold exactly the files of ``local``.

        Files whose CRC32C matches the stored object are not sent again, so storing what a VM
        already uploaded costs one listing. Objects under ``key`` that ``local`` lacks are removed.
        ``move`` is accepted for the protocol; ``local`` is left in place.

        Raises:
            InvalidPathError: ``local`` holds a symlink or special file (nothing is uploaded then).
        """
        del move
        files = local_files(local)
        folder = self._name(key) + "/"
        with self._errors():
            stored = dict(self._names_under(folder))
            for relative, path in files.items():
                if stored.get(folder + relative) != crc32c_of(path):
                    self._upload_file(path, folder + relative)
            stale = sorted(stored.keys() - {folder + relative for relative in files})
            self._delete_names(stale)

    def get_dir(self, key: str, local: Path) -> None:
        """Download every object under ``key`` into ``local`` (an empty folder when there is none).

        Raises:
            InvalidPathError: An object's name would place it outside ``local``.
        """
        folder = self._name(key) + "/"
        with self._errors():
            names = [name for name, _crc in self._names_under(folder)]
            targets = {name: local_target(local, name[len(folder) :]) for name in names}
            local.mkdir(parents=True, exist_ok=True)
            for name, target in targets.items():
                self._download(name, target)

    def put_file(self, local: Path, key: str) -> None:
        """Upload the file ``local`` as ``key`` (resumable above :data:`RESUMABLE_THRESHOLD`)."""
        name = self._name(key)
        with self._errors():
            self._upload_file(local, name)

    def get_file(self, key: str, local: Path) -> bool:
        """Download ``key`` to ``local`` through a temporary file; False when it is missing."""
        name = self._name(key)
        with self._errors():
            return self._download(name, local)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` as ``key``."""
        name = self._name(key)
        with self._errors():
            self._upload(io.BytesIO(data), len(data), name)

    def read_bytes(self, key: str, offset: int = 0) -> bytes | None:
        """The bytes of ``key`` from byte ``offset`` (a ranged download); None when it is missing."""
        if offset < 0:
            raise InvalidArgumentError("offset must be zero or more", details={"offset": offset})
        name = self._name(key)
        kinds = client_errors()
        with self._errors():
            try:
                data: bytes = self._bucket().blob(name).download_as_bytes(start=offset or None)
            except kinds.range_not_satisfiable:
                return b""
            except kinds.not_found:
                self._ensure_bucket()
                return None
            return bytes(data)

    def list_keys(self, prefix: str) -> list[str]:
        """Every object key under the folder ``prefix``, relative to the store's root, sorted."""
        with self._errors():
            names = self._names_under(self._folder(prefix))
        return sorted(self._key(name) for name, _crc in names)

    def local_path(self, key: str) -> Path | None:
        """None: objects in a bucket have no local path."""
        return None

    def read_text(self, key: str, offset: int = 0) -> str:
        """Text of ``key`` from byte ``offset``; empty when missing or past the end."""
        return (self.read_bytes(key, offset) or b"").decode("utf-8", errors="replace")

    def delete(self, key: str) -> None:
        """Remove the object ``key`` and every object under it (no error when missing)."""
        name = self._name(key)
        with self._errors():
            names = [name for name, _crc in self._names_under(name + "/")]
            self._delete_names([name, *names])

    def _delete_names(self, names: list[str]) -> None:
        if names:
            self._bucket().delete_blobs(names, on_error=lambda _blob: None)

    def _upload_file(self, path: Path, name: str) -> None:
        with path.open("rb") as handle:
            self._upload(handle, os.fstat(handle.fileno()).st_size, name)

    def _upload(self, handle: BinaryIO, size: int, name: str) -> None:
        """Send ``size`` bytes from ``handle``: one request when small, else resumable in chunks."""
        blob = self._bucket().blob(name)
        if size > RESUMABLE_THRESHOLD:
            blob.chunk_size = UPLOAD_CHUNK_SIZE
            blob.upload_from_file(handle, size=None, checksum="crc32c")  # no size: always resumable
        else:
            blob.upload_from_file(handle, size=size, checksum="crc32c")
        self._bucket_seen = True

    def _download(self, name: str, target: Path) -> bool:
        """Write object ``name`` to ``target`` via a temporary file; False when it is missing."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as stream:
                self._bucket().blob(name).download_to_file(stream)
            temp.chmod(0o644)
            os.replace(temp, target)
        except client_errors().not_found:
            self._ensure_bucket()
            return False
        finally:
            temp.unlink(missing_ok=True)
        return True
