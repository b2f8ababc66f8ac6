"""What this build of Goldfish is: package version, database schema version, execution backends.

Known without a project (``goldfish_version`` answers before one is loaded).
"""

from __future__ import annotations

from goldfish import __version__
from goldfish.db.database import schema_version
from goldfish.result_model import ResultModel as BaseModel


class ReleaseInfo(BaseModel):
    """This build's versions and the backends it provides."""

    package_version: str
    schema_version: int
    backends: list[str]


def release() -> ReleaseInfo:
    """This build's package and schema versions and the backends it provides."""
    from goldfish.backends.factory import available_backends  # noqa: PLC0415 - not needed at server start

    return ReleaseInfo(
        package_version=__version__, schema_version=schema_version(), backends=available_backends()
    )
