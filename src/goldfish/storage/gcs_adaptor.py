"""The one door to the Google Cloud Storage client: imported on first use, with the install command.

Nothing else under ``storage/`` imports ``google.*``, ``google_crc32c`` or ``requests`` (ruff
banned-api and ``tests/unit/test_layering.py`` check it): ``gcs.py`` asks here for a client, a
CRC32C step and the exception classes it translates, so importing it stays cheap (the server's
cold start depends on it) and a missing library is one :class:`StorageError` naming the fix.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Any

from goldfish.errors import StorageError

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "goldfish-local"
LIBRARY = "google-cloud-storage>=2.16"

ExceptionKinds = tuple[type[BaseException], ...]


def install_fix() -> str:
    """The command that installs the GCS client into the interpreter running Goldfish."""
    return f"{sys.executable} -m pip install '{LIBRARY}'"


def _missing(error: ImportError) -> StorageError:
    return StorageError(
        "The Google Cloud Storage library is missing from this installation.",
        details={"reason": "library_missing", "module": error.name or "google.cloud.storage"},
        remedy=install_fix(),
    )


def client(project: str | None) -> Any:
    """A ``google.cloud.storage.Client`` (anonymous against ``$STORAGE_EMULATOR_HOST``).

    Raises:
        StorageError: the library is not installed (``details.reason`` = ``library_missing``).
    """
    try:
        import google.cloud.storage as gcs  # type: ignore[import-untyped]  # noqa: PLC0415
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    except ImportError as error:
        raise _missing(error) from None
    if os.environ.get(EMULATOR_ENV):
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return gcs.Client(project=project or EMULATOR_PROJECT, credentials=anonymous)
    return gcs.Client(project=project)


def crc32c_extend(crc: int, block: bytes) -> int:
    """``crc`` extended by ``block`` (the checksum GCS keeps for every object).

    Raises:
        StorageError: the library is not installed.
    """
    try:
        import google_crc32c  # noqa: PLC0415
    except ImportError as error:
        raise _missing(error) from None
    return int(google_crc32c.extend(crc, block))


@dataclass(frozen=True)
class ClientErrors:
    """The client's exception classes, grouped by what they mean for a caller."""

    access_denied: ExceptionKinds
    no_credentials: ExceptionKinds
    not_found: ExceptionKinds
    unreachable: ExceptionKinds
    forbidden: ExceptionKinds
    range_not_satisfiable: ExceptionKinds


@functools.cache
def client_errors() -> ClientErrors:
    """The exception classes of the client and its transport (imported on first use).

    Raises:
        StorageError: the library is not installed.
    """
    try:
        import requests  # noqa: PLC0415
        from google.api_core import exceptions as api  # noqa: PLC0415
        from google.auth import exceptions as auth  # noqa: PLC0415
    except ImportError as error:
        raise _missing(error) from None
    return ClientErrors(
        access_denied=(api.Forbidden, api.Unauthorized, auth.RefreshError),
        no_credentials=(auth.DefaultCredentialsError,),
        not_found=(api.NotFound,),
        unreachable=(
            api.ServerError,
            api.RetryError,
            api.TooManyRequests,
            auth.TransportError,
            requests.ConnectionError,
            requests.Timeout,
        ),
        forbidden=(api.Forbidden,),
        range_not_satisfiable=(api.RequestRangeNotSatisfiable,),
    )
