"""The one error hierarchy of Goldfish, and the catalogue of its codes.

Every error a user can cause is a :class:`GoldfishError` with a stable upper-snake ``code``,
a human message, structured ``details`` and a one-sentence ``remedy``. Adapters translate
git, docker, cloud and SQLite exceptions into these at their boundary, so no library jargon
reaches agents.

The errors every layer raises are defined here; an error only one domain raises is defined
beside it (``backups/models.py``, ``backends/gpus.py``, ...). Either way its code is listed in
:data:`CODES`, the one place that says which class owns which code;
``tests/unit/test_error_codes.py`` imports every module and checks each code has exactly one
owner.
"""

from __future__ import annotations

import difflib
import errno
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final


class GoldfishError(Exception):
    """Base class: a user-facing error with a stable code.

    Attributes:
        code: Stable upper-snake identifier agents and scripts can branch on.
        message: What went wrong, in plain words.
        details: Structured context (names, paths, limits) for programs.
        remedy: One sentence telling the caller what to do instead.
        instance_codes: Set by a class whose errors each carry one of several codes (chosen
            when raised) instead of the class's ``code``; every one is listed in :data:`CODES`.
    """

    code = "GOLDFISH_ERROR"
    instance_codes: ClassVar[tuple[str, ...]] = ()
    default_remedy = ""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, remedy: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.remedy = remedy if remedy is not None else self.default_remedy

    def to_dict(self) -> dict[str, Any]:
        """Return the error as the ``error`` object of a tool result."""
        return {"code": self.code, "message": self.message, "details": self.details, "remedy": self.remedy}


class InvalidArgumentError(GoldfishError):
    """An argument has the wrong shape, type, length or characters."""

    code = "INVALID_ARGUMENT"
    default_remedy = "Correct the argument named in details and call again."


class InvalidPathError(InvalidArgumentError):
    """A path escapes its root, contains forbidden characters or points through a symlink."""

    code = "INVALID_PATH"
    default_remedy = "Use a relative path inside the project without '..' or links that leave it."


class ReasonRequiredError(InvalidArgumentError):
    """A state-changing call came without a meaningful reason."""

    code = "REASON_REQUIRED"
    default_remedy = "Pass reason: one sentence (at least 15 characters) saying why you make this change."


class ProjectNotFoundError(GoldfishError):
    """No Goldfish project is loaded or discoverable."""

    code = "PROJECT_NOT_INITIALIZED"
    default_remedy = (
        "Call initialize_project (or run `goldfish init`) first, or start the server in a project."
    )


class ProjectExistsError(GoldfishError):
    """Initialising would overwrite a different project."""

    code = "PROJECT_EXISTS"
    default_remedy = "Pick another directory, or pass from_existing=true to adopt the existing goldfish.yaml."


class ConfigError(GoldfishError):
    """goldfish.yaml (or another config file) is invalid."""

    code = "CONFIG_INVALID"
    default_remedy = "Fix the keys listed in details.problems and call reload_config."


class PipelineInvalidError(GoldfishError):
    """pipeline.yaml (or a stage config) fails validation."""

    code = "PIPELINE_INVALID"
    default_remedy = "Fix the problems listed in details.problems (file, line, stage) and try again."


class WorkspaceNotFoundError(GoldfishError):
    """The named workspace does not exist."""

    code = "WORKSPACE_NOT_FOUND"
    default_remedy = "Call list_workspaces to see the existing names, or create_workspace."


class RunNotFoundError(GoldfishError):
    """No run has that id."""

    code = "RUN_NOT_FOUND"
    default_remedy = "Call list_runs to see run ids (stage-... or prun-...)."


class WorkspaceExistsError(GoldfishError):
    """A workspace with that name exists already."""

    code = "WORKSPACE_EXISTS"
    default_remedy = "Choose another name, or mount the existing workspace."


class SlotNotFoundError(GoldfishError):
    """The slot is not one of the configured slots."""

    code = "SLOT_NOT_FOUND"
    default_remedy = "Use one of the slots listed in details.slots (configured in goldfish.yaml)."


class SlotOccupiedError(GoldfishError):
    """The slot already holds a workspace or stray files."""

    code = "SLOT_OCCUPIED"
    default_remedy = "Hibernate the workspace in that slot first, or pick a free slot."


class SlotEmptyError(GoldfishError):
    """No workspace is mounted in the slot."""

    code = "SLOT_EMPTY"
    default_remedy = "Mount a workspace into the slot first (mount)."


class WorkspaceMountedError(GoldfishError):
    """The operation is refused while the workspace is mounted."""

    code = "WORKSPACE_MOUNTED"
    default_remedy = "Hibernate the slot that holds it first."


class WorkspaceBusyError(GoldfishError):
    """Another operation holds the workspace right now."""

    code = "WORKSPACE_BUSY"
    default_remedy = "Wait a moment and call again."


class VersionNotFoundError(GoldfishError):
    """The named version does not exist in the workspace."""

    code = "VERSION_NOT_FOUND"
    default_remedy = "Call manage_versions(action='list') to see the workspace's versions."


class TagExistsError(GoldfishError):
    """The tag is already used in the workspace."""

    code = "TAG_EXISTS"
    default_remedy = "Choose another tag, or untag the version that holds it first."


class TagNotFoundError(GoldfishError):
    """The tag does not exist in the workspace."""

    code = "TAG_NOT_FOUND"
    default_remedy = "Call manage_versions(action='list') to see the tags."


class VersionTaggedError(GoldfishError):
    """Tagged versions are protected from pruning."""

    code = "VERSION_TAGGED"
    default_remedy = "Untag the version first if you really want to prune it."


class UnsafeSymlinkError(GoldfishError):
    """A symlink in a slot points outside it."""

    code = "UNSAFE_SYMLINK"
    default_remedy = "Replace the link with a copy of the file, or point it inside the slot."


class SlotTooLargeError(GoldfishError):
    """A file in the slot exceeds the configured size limit."""

    code = "FILE_TOO_LARGE"
    default_remedy = (
        "Keep large data out of the slot (register it as a source) or list it in .goldfishignore."
    )


class StorageError(GoldfishError):
    """Run storage (a cloud bucket) is missing, refuses access, or cannot be reached.

    ``details.reason`` says which: ``bucket_not_found``, ``access_denied``, ``no_credentials`` or
    ``unreachable``; ``details.bucket`` names the bucket.
    """

    code = "STORAGE_UNAVAILABLE"
    default_remedy = "Check storage.gcs in goldfish.yaml, the bucket and the credentials, then call again."


class ConflictError(GoldfishError):
    """Another call stored the same unique thing (a name, a tag, a slot's workspace) at the same moment.

    The database layer raises it for a unique key that is already taken; a service that knows
    what the key means catches it and raises its own error (``WORKSPACE_EXISTS``, ``TAG_EXISTS``).
    """

    code = "CONFLICT"
    default_remedy = "Another call changed the same thing just now: read the current state, then call again."


class InputUnreachableError(GoldfishError):
    """A stage's input lives where the machine that runs the stage cannot read it."""

    code = "INPUT_UNREACHABLE"
    default_remedy = (
        "Put the input in the project's storage (or register it as a source this machine can read), "
        "or run the stage on a backend that reaches it."
    )


class UnknownToolError(GoldfishError):
    """A tools/call named a tool this server does not have."""

    code = "UNKNOWN_TOOL"
    default_remedy = "Call one of the tools that tools/list shows (status is a good start)."


class DiskFullError(GoldfishError):
    """The project's disk has no space left; the call was not completed."""

    code = "DISK_FULL"
    default_remedy = (
        "Free space on the project's disk (old run outputs, caches), then call again; "
        "nothing half-done is kept."
    )


class DiskReadOnlyError(GoldfishError):
    """The project's disk (or its database) cannot be written."""

    code = "DISK_READ_ONLY"
    default_remedy = "Make the project folder writable again (remount it read-write), then call again."


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# How SQLite and git word the same two causes.
_DISK_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")
_READ_ONLY_WORDS = ("read-only file system", "readonly database")
_NEARLY_FULL_BYTES = 64 * 1024


def disk_fault(exc: BaseException) -> GoldfishError | None:
    """The disk error behind ``exc`` (a full or read-only disk), or None when it is something else."""
    if isinstance(exc, DiskFullError | DiskReadOnlyError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in _DISK_FULL_ERRNOS:
            return _disk_error(DiskFullError, str(exc))
        if exc.errno == errno.EROFS:
            return _disk_error(DiskReadOnlyError, str(exc))
        return None
    return disk_fault_in(str(exc)) if isinstance(exc, sqlite3.Error) else None


def disk_fault_in(message: str) -> GoldfishError | None:
    """The disk error a tool's error output (git's stderr, SQLite's message) names, or None."""
    lowered = message.lower()
    if any(word in lowered for word in _DISK_FULL_WORDS):
        return _disk_error(DiskFullError, message)
    if any(word in lowered for word in _READ_ONLY_WORDS):
        return _disk_error(DiskReadOnlyError, message)
    return None


def disk_fault_at(path: Path, cause: str) -> GoldfishError | None:
    """The disk error of the filesystem holding ``path`` (read-only, or almost no space), or None.

    For tools whose error output does not say why a write failed (git's "couldn't write").
    """
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return _disk_error(DiskReadOnlyError, cause)
    if stats.f_bavail * stats.f_frsize < _NEARLY_FULL_BYTES:
        return _disk_error(DiskFullError, cause)
    return None


def _disk_error(kind: type[GoldfishError], cause: str) -> GoldfishError:
    what = "full" if kind is DiskFullError else "read-only"
    return kind(
        f"The project's disk is {what}; the call was not completed.", details={"cause": cause.strip()[-300:]}
    )


class InternalError(GoldfishError):
    """An unexpected failure; the server log has the traceback."""

    code = "INTERNAL"
    default_remedy = "Look at the server log under .goldfish/logs; report it if it repeats."


# Every code an agent or script can see, and the one class that owns it (by class name: the
# classes live in errors.py or beside the one domain that raises them). A new code gets its line
# here; tests/unit/test_error_codes.py fails on a code with no line, two owners, or no owner.
CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # any layer (errors.py)
        "GOLDFISH_ERROR": "GoldfishError",
        "INVALID_ARGUMENT": "InvalidArgumentError",
        "INVALID_PATH": "InvalidPathError",
        "REASON_REQUIRED": "ReasonRequiredError",
        "PROJECT_NOT_INITIALIZED": "ProjectNotFoundError",
        "PROJECT_EXISTS": "ProjectExistsError",
        "CONFIG_INVALID": "ConfigError",
        "PIPELINE_INVALID": "PipelineInvalidError",
        "WORKSPACE_NOT_FOUND": "WorkspaceNotFoundError",
        "WORKSPACE_EXISTS": "WorkspaceExistsError",
        "SLOT_NOT_FOUND": "SlotNotFoundError",
        "SLOT_OCCUPIED": "SlotOccupiedError",
        "SLOT_EMPTY": "SlotEmptyError",
        "WORKSPACE_MOUNTED": "WorkspaceMountedError",
        "WORKSPACE_BUSY": "WorkspaceBusyError",
        "VERSION_NOT_FOUND": "VersionNotFoundError",
        "TAG_EXISTS": "TagExistsError",
        "TAG_NOT_FOUND": "TagNotFoundError",
        "VERSION_TAGGED": "VersionTaggedError",
        "UNSAFE_SYMLINK": "UnsafeSymlinkError",
        "FILE_TOO_LARGE": "SlotTooLargeError",
        "STORAGE_UNAVAILABLE": "StorageError",
        "CONFLICT": "ConflictError",
        "INPUT_UNREACHABLE": "InputUnreachableError",
        "UNKNOWN_TOOL": "UnknownToolError",
        "DISK_FULL": "DiskFullError",
        "DISK_READ_ONLY": "DiskReadOnlyError",
        "INTERNAL": "InternalError",
        # files and config (yamlfile.py)
        "YAML_TOO_COMPLEX": "YamlTooComplexError",
        "DUPLICATE_KEY": "DuplicateKeyError",
        # runs (runs/)
        "RUN_NOT_FOUND": "RunNotFoundError",
        "REVIEW_BLOCKED": "ReviewBlockedError",
        "INPUT_UNAVAILABLE": "InputUnavailableError",
        # experiment memory (memory/)
        "RECORD_NOT_FOUND": "RecordNotFoundError",
        "ALREADY_FINALIZED": "AlreadyFinalizedError",
        "RUN_NOT_FINISHED": "RunNotFinishedError",
        "FINALIZATION_REQUIRED": "FinalizationRequiredError",
        "PLOT_UNAVAILABLE": "PlotUnavailableError",
        "METRIC_NOT_FOUND": "MetricNotFoundError",
        # data sources (data/sources.py), stage validation (svs/), secrets (secrets/)
        "SOURCE_NOT_FOUND": "SourceNotFoundError",
        "SOURCE_EXISTS": "SourceExistsError",
        "SOURCE_CHANGED": "SourceChangedError",
        "PATTERN_NOT_FOUND": "PatternNotFoundError",
        "SECRET_NOT_SET": "SecretNotSetError",
        "SECRET_STORE_UNAVAILABLE": "SecretStoreUnavailableError",
        # backups (backups/models.py)
        "BACKUP_NOT_FOUND": "BackupNotFoundError",
        "BACKUP_CORRUPT": "BackupCorruptError",
        "RUNS_ACTIVE": "RunsActiveError",
        # local backends (backends/)
        "GPU_UNAVAILABLE": "GpuUnavailableError",
        "GPU_NOT_READY": "GpuNotReadyError",
        "ENVIRONMENT_BUILD_FAILED": "EnvironmentBuildError",
        "DOCKER_UNAVAILABLE": "DockerUnavailableError",
        "BASE_IMAGE_MISSING": "BaseImageMissingError",
        "BASE_DOCKERFILE_MISSING": "BaseDockerfileMissingError",
        "IMAGE_NOT_PREPARED": "ImageNotPreparedError",
        "IMAGE_BUILD_FAILED": "ImageBuildError",
        "BUILD_NOT_FOUND": "BuildNotFoundError",
        # GCE (backends/gce/): a failed Compute call carries its category's code
        "GCE_NOT_CONFIGURED": "GceNotConfiguredError",
        "WARM_POOL_UNAVAILABLE": "WarmPoolUnavailableError",
        "GCE_LAUNCH_FAILED": "LaunchError",
        "GCE_CAPACITY": "LaunchFailure",
        "GCE_QUOTA": "LaunchFailure",
        "GCE_CREDENTIALS": "LaunchFailure",
        "GCE_INVALID_REQUEST": "LaunchFailure",
        "GCE_NETWORK": "LaunchFailure",
        "GCE_NOT_FOUND": "LaunchFailure",
        "GCE_CONFLICT": "LaunchFailure",
        "GCE_UNKNOWN": "LaunchFailure",
        "SECRET_MANAGER_FAILED": "SecretManagerError",
        # the dashboard (web/app.py)
        "UNAUTHORIZED": "DashboardTokenError",
    }
)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return the closest candidate to ``word``, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggestion_suffix(word: str, candidates: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" or an empty string."""
    match = did_you_mean(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""
