"""Whether a stored artifact's URI still names something (run outputs may be gone after a restore)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from goldfish.storage.protocol import Storage


def present(storage: Storage, uri: str | None) -> bool:
    """False when ``uri`` names a key of ``storage``, or a local file, that is not there.

    Other URIs (another bucket, a registered source elsewhere) count as present: checking them
    would need a client this call does not have.
    """
    if not uri:
        return True
    key = storage.key_of(uri)
    if key is not None:
        return storage.exists(key)
    parts = urlsplit(uri)
    return parts.scheme != "file" or Path(unquote(parts.path)).exists()
