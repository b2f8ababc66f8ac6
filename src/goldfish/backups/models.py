"""What backups return, and the errors they raise."""

from __future__ import annotations

from pydantic import BaseModel, Field

from goldfish.errors import GoldfishError


class BackupNotFoundError(GoldfishError):
    """No complete backup has that id at the configured destination."""

    code = "BACKUP_NOT_FOUND"
    default_remedy = "Run list_backups to see the backups at backup.destination."


class BackupCorruptError(GoldfishError):
    """A backup file is missing or its hash differs from the manifest."""

    code = "BACKUP_CORRUPT"
    default_remedy = "Restore an older backup (list_backups); this one cannot be trusted."


class RunsActiveError(GoldfishError):
    """An in-place restore would pull the project out from under running stages."""

    code = "RUNS_ACTIVE"
    default_remedy = "Wait for the listed runs to end (or cancel them), or restore into an empty folder."


class BackupCounts(BaseModel):
    """What a backup holds."""

    workspaces: int
    versions: int
    tags: int
    pipeline_runs: int
    stage_runs: int
    records: int


class BackupInfo(BaseModel):
    """One backup, as its manifest describes it."""

    backup_id: str
    created: str
    reason: str
    size_bytes: int
    location: str = Field(description="Where it is: a folder path or a gs:// URI.")
    counts: BackupCounts
    include_outputs: bool = Field(description="False: run outputs were left out (logs and metrics are in).")
    automatic: bool = False


class RestoreInfo(BaseModel):
    """What a restore produced and the checks it passed."""

    backup_id: str
    project_root: str
    in_place: bool
    counts: BackupCounts
    integrity_check: str = Field(description="PRAGMA integrity_check of the restored database.")
    version_store_check: str = Field(description="ok when the restored versions pass git fsck.")
    outputs_included: bool = Field(description="False: runs keep their records but not their output files.")
    safety_backup_id: str | None = Field(
        None, description="In place: the backup of the state before the restore."
    )
