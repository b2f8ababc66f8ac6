"""The process backend's part of ``goldfish doctor``: the interpreter stages run with.

The process backend always works (it runs stages with the server's own interpreter); what can
be missing is pip, which a workspace's ``requirements.txt`` needs for its venv.
"""

from __future__ import annotations

import sys
from typing import Any

from goldfish.backends.process.python_env import pip_source

PIP_FIX = "install pip for this interpreter (Debian: sudo apt-get install -y python3-pip python3-venv)"


def diagnose() -> dict[str, Any]:
    """The interpreter, its version, and where a requirements venv's pip comes from (never raises)."""
    source = pip_source()
    return {
        "ready": True,
        "interpreter": sys.executable,
        "python": sys.version.split()[0],
        "pip": source,
        "fix": None if source else PIP_FIX,
    }
