"""``storage.backend`` → the store of run artifacts (one constructor per scheme)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from goldfish.config import GoldfishConfig
from goldfish.errors import ConfigError
from goldfish.storage.local import LocalStorage
from goldfish.storage.protocol import Storage


def _local(config: GoldfishConfig, local_root: Path) -> Storage:
    del config
    return LocalStorage(local_root)


def _gcs(config: GoldfishConfig, local_root: Path) -> Storage:
    del local_root
    gcs = config.storage.gcs
    if gcs is None:
        raise ConfigError(
            "storage.backend is gcs but storage.gcs.bucket is not set.",
            details={"problems": [{"key": "storage.gcs.bucket", "message": "required when backend is gcs"}]},
            remedy="Set storage.gcs.bucket (and optionally storage.gcs.prefix) in goldfish.yaml.",
        )
    from goldfish.storage.gcs import GcsStorage  # noqa: PLC0415 - a local project never loads it

    return GcsStorage(gcs.bucket, gcs.prefix, config.gce.project_id)


OPENERS: dict[str, Callable[[GoldfishConfig, Path], Storage]] = {"local": _local, "gcs": _gcs}


def open_storage(config: GoldfishConfig, local_root: Path) -> Storage:
    """The store ``config.storage.backend`` names.

    Args:
        config: The project's configuration.
        local_root: The folder of the local store (``.goldfish/storage``).

    Returns:
        A :class:`LocalStorage` for ``local``, a :class:`GcsStorage` for ``gcs`` (no network call yet).

    Raises:
        ConfigError: ``gcs`` is chosen without ``storage.gcs``.
    """
    return OPENERS[config.storage.backend](config, local_root)
