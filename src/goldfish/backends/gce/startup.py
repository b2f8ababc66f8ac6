"""The VM-side files shipped through instance metadata: the bootstrap and the agent archive.

The agent is the ``goldfish.backends.gce.vm`` package packed as one zip application (run with
``python3 agent.pyz``): its modules under ``goldfish_agent/`` plus a ``__main__.py`` that starts
``goldfish_agent.loop.main``. Metadata values are text, so the ``goldfish-agent`` value is the
archive in base64; ``vm/startup.sh`` decodes it. GCE takes at most 256 KiB per value and 512 KiB
for all of an instance's metadata together (REST reference, ``Metadata.items``).
"""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import resources

AGENT_PACKAGE = "goldfish_agent"  # the vm package's name inside the archive
ARCHIVE_MAIN = f"import sys\n\nfrom {AGENT_PACKAGE}.loop import main\n\nsys.exit(main())\n"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same bytes


@dataclass(frozen=True)
class StartupFiles:
    """``startup-script`` (bash bootstrap) and ``goldfish-agent`` (the agent archive, base64) values."""

    startup_script: str
    agent: str


def agent_archive() -> bytes:
    """The VM agent as a zip application (deterministic: no timestamps, names sorted)."""
    folder = resources.files("goldfish.backends.gce.vm")
    modules = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".py"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, "__main__.py", ARCHIVE_MAIN.encode("utf-8"))
        for name in modules:
            _add(archive, f"{AGENT_PACKAGE}/{name}", (folder / name).read_bytes())
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    entry = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    archive.writestr(entry, data)


@cache
def startup_files() -> StartupFiles:
    """Both metadata values, built once from the installed package."""
    folder = resources.files("goldfish.backends.gce.vm")
    return StartupFiles(
        startup_script=(folder / "startup.sh").read_text(encoding="utf-8"),
        agent=base64.b64encode(agent_archive()).decode("ascii"),
    )
