"""Where jobs live on the VM; the server imports :data:`JOB_ROOT`, :data:`SCHEMA_VERSION`, :func:`job_dir`."""

from __future__ import annotations

import os
import time

JOB_ROOT = "/var/lib/goldfish/jobs"
SCHEMA_VERSION = 1
JOB_ROOT_ENV = "GOLDFISH_AGENT_JOB_ROOT"


def job_dir(stage_run_id: str, attempt: int) -> str:
    """The folder on the VM holding one attempt of a stage run (the server imports this)."""
    return f"{JOB_ROOT}/{stage_run_id}/a{attempt}"


def iso_utc(at: float | None = None) -> str:
    """``at`` (default: now) as UTC ISO-8601 with a ``Z``, e.g. ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def is_under(path: str, folder: str) -> bool:
    """Whether the absolute ``path`` (no ``..``) is ``folder`` or inside it."""
    return (
        path.startswith("/")
        and ".." not in path.split("/")
        and (os.path.normpath(path) == folder or os.path.normpath(path).startswith(folder + "/"))
    )


def job_root() -> str:
    """The folder job folders must be in: :data:`JOB_ROOT`, or ``$GOLDFISH_AGENT_JOB_ROOT`` (sandboxes)."""
    override = os.environ.get(JOB_ROOT_ENV, "")
    if not override:
        return JOB_ROOT
    root = os.path.normpath(override)
    if not os.path.isabs(root) or root == "/":
        raise SystemExit(f"{JOB_ROOT_ENV} must be an absolute folder other than /")
    return root
