"""What the workspace services return (plain pydantic models, no MCP types)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from goldfish.result_model import ResultModel as BaseModel  # validators built at first use
from goldfish.timeutil import age

if TYPE_CHECKING:
    from goldfish.db.workspaces import VersionRow

VersionAction = Literal["list", "tag", "untag", "prune", "unprune", "prune_before_tag"]


class VersionInfo(BaseModel):
    """One saved version."""

    version: str = Field(description="vN")
    commit: str = Field(description="Short id of the saved snapshot.")
    message: str
    source: str = Field(description="save, hibernate, rollback, run or reconcile")
    files_changed: int
    created_at: str
    age: str | None
    tags: list[str]
    pruned: bool

    @classmethod
    def of(cls, row: VersionRow) -> VersionInfo:
        """Build from a database row."""
        return cls(
            version=row.version,
            commit=row.commit_sha[:12],
            message=row.message,
            source=row.source,
            files_changed=row.files_changed,
            created_at=row.created_at,
            age=age(row.created_at),
            tags=row.tags,
            pruned=row.pruned,
        )


class WorkspaceInfo(BaseModel):
    """A workspace and where it stands."""

    name: str
    goal: str
    created_at: str
    mounted_slot: str | None
    slot_path: str | None
    versions: int = Field(description="Number of visible (unpruned) versions.")
    latest_version: VersionInfo | None
    parent_workspace: str | None
    parent_version: str | None
    last_run: LastRun | None = Field(None, description="The newest pipeline run of the workspace.")
    best_result: BestResult | None = Field(None, description="Best finalized result on the primary metric.")


class LastRun(BaseModel):
    """The newest pipeline run of a workspace."""

    pipeline_run_id: str
    state: str
    version: str
    created_at: str


class BestResult(BaseModel):
    """The best finalized result of a workspace."""

    record_id: str
    pipeline_run_id: str | None
    version: str
    metric: str
    value: float
    direction: str
    ml_outcome: str | None


class SaveInfo(BaseModel):
    """Outcome of syncing a slot into a new version."""

    workspace: str
    slot: str
    created: bool = Field(description="False when nothing had changed since the last version.")
    version: VersionInfo | None
    files_changed: int
    changed_files: list[str] = Field(description="Up to 100 changed paths.")


class MountInfo(BaseModel):
    """A workspace placed in a slot."""

    workspace: WorkspaceInfo
    slot: str
    slot_path: str
    files: int
    recent_thoughts: list[str]
    pending_finalizations: list[str] = Field(
        default_factory=list, description="Finished runs (prun-...) still waiting for finalize_run."
    )
    recent_trend: list[float] = Field(
        default_factory=list, description="Last finalized values of the primary metric, oldest first."
    )


class HibernateInfo(BaseModel):
    """A slot emptied, its work saved first when dirty."""

    workspace: str
    slot: str
    saved_version: VersionInfo | None
    removed_unversioned: list[str] = Field(description="Ignored files that were in the slot (up to 100).")


class DiffFile(BaseModel):
    """One file's change."""

    path: str
    status: str
    lines_added: int | None
    lines_removed: int | None


class DiffInfo(BaseModel):
    """Differences between two refs."""

    target: str
    against: str
    files: list[DiffFile]
    files_changed: int
    patch: str
    truncated: bool


class DeleteInfo(BaseModel):
    """A workspace deleted (its history is kept, hidden)."""

    workspace: str
    versions_kept: int


class VersionsPage(BaseModel):
    """A page of versions plus what an action changed."""

    workspace: str
    action: str
    changed: list[str] = Field(default_factory=list, description="Versions the action changed.")
    skipped: list[str] = Field(default_factory=list, description="Versions left alone (e.g. tagged).")
    versions: list[VersionInfo]
    total: int


class WorkspaceDetail(BaseModel):
    """Everything ``inspect_workspace`` shows."""

    workspace: WorkspaceInfo
    versions: list[VersionInfo]
    versions_total: int
    dirty: bool | None = Field(description="Slot has unsaved changes (None when not mounted).")
    runs: dict[str, int] = Field(default_factory=dict, description="Runs by state (none yet).")
    pipeline: str | None = Field(None, description="pipeline.yaml text when include has 'pipeline'.")
