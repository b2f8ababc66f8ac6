"""Workspace lifecycle: create, list, mount, hibernate, inspect, delete."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from goldfish.db.database import Database
from goldfish.db.records import RecordRepository
from goldfish.db.thoughts import ThoughtRepository
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.errors import (
    ConflictError,
    GoldfishError,
    InvalidArgumentError,
    SlotOccupiedError,
    WorkspaceExistsError,
    WorkspaceMountedError,
    disk_fault,
)
from goldfish.validation import text, workspace_name
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.models import (
    DeleteInfo,
    HibernateInfo,
    MountInfo,
    VersionInfo,
    WorkspaceDetail,
    WorkspaceInfo,
)
from goldfish.workspaces.sync import MAX_LISTED, SlotSync

MAX_GOAL_LENGTH = 2000
TREND_POINTS = 5


class WorkspaceService:
    """Creates workspaces and moves them in and out of slots."""

    def __init__(
        self,
        core: WorkspaceCore,
        db: Database,
        rows: WorkspaceRepository,
        repo: DevRepo,
        sync: SlotSync,
        records: RecordRepository,
        thoughts: ThoughtRepository,
    ):
        self._core = core
        self._db = db
        self._rows = rows
        self._repo = repo
        self._sync = sync
        self._records = records
        self._thoughts = thoughts

    def create(
        self, name: str, goal: str, from_workspace: str | None = None, from_version: str | None = None
    ) -> WorkspaceInfo:
        """Create a workspace from the project base, another workspace's head, or one of its versions."""
        core = self._core
        workspace_name(name, "name")
        text(goal, "goal", MAX_GOAL_LENGTH)
        parent_version: int | None = None
        if from_workspace is not None:
            parent = core.workspace_or_slot(from_workspace)
            if from_version is not None:
                version = core.version(parent, from_version)
                base, parent_version = version.commit_sha, version.version_num
            else:
                base = self._repo.branch_head(parent.name)
                latest = self._rows.latest_version(parent.id)
                parent_version = latest.version_num if latest else None
            parent_name: str | None = parent.name
        else:
            if from_version is not None:
                raise InvalidArgumentError(
                    "from_version needs from_workspace: say whose version to start from.",
                    details={"field": "from_workspace"},
                )
            base, parent_name = self._repo.initialize(), None
        with core.locked(name):
            if self._rows.get(name) is not None:
                raise WorkspaceExistsError(f"Workspace '{name}' already exists.", details={"workspace": name})
            try:
                with self._db.transaction() as conn:
                    self._rows.insert(conn, name, goal.strip(), base, parent_name, parent_version)
                    self._repo.create_branch(name, base)
            except ConflictError:
                raise WorkspaceExistsError(
                    f"Workspace '{name}' already exists.", details={"workspace": name}
                ) from None
        return core.info(core.workspace(name))

    def list(self, limit: int, offset: int) -> tuple[list[WorkspaceInfo], int]:
        """A page of workspaces by name, with the total."""
        rows = self._rows.page(limit, offset)
        return [self._core.info(row) for row in rows], self._rows.count()

    def mount(self, workspace: str, slot: str) -> MountInfo:
        """Write a workspace's latest files into an empty slot as plain files."""
        core = self._core
        core.check_slot(slot)
        ws = core.workspace_or_slot(workspace)
        path = core.slot_path(slot)
        with core.locked(ws.name):
            current = self._rows.mount_of_workspace(ws.id)
            if current is not None:
                if current.slot == slot:
                    return self._mount_info(ws.name, slot)
                raise WorkspaceMountedError(
                    f"Workspace '{ws.name}' is already mounted in slot '{current.slot}'.",
                    details={"workspace": ws.name, "slot": current.slot},
                    remedy=f"Work in slot '{current.slot}', or hibernate it there first.",
                )
            self._claim_slot(slot, ws.id, path)
            try:
                self._repo.checkout(path, core.paths.slot_index(slot), self._repo.branch_head(ws.name))
            except BaseException:
                self._release_slot(slot)
                raise
        return self._mount_info(ws.name, slot)

    def _claim_slot(self, slot: str, workspace_id: int, path: object) -> None:
        core = self._core
        occupant = self._rows.mount_of_slot(slot)
        if occupant is not None:
            raise SlotOccupiedError(
                f"Slot '{slot}' holds workspace '{occupant.workspace}'.",
                details={"slot": slot, "workspace": occupant.workspace},
            )
        slot_dir = core.paths.slot(slot)
        if slot_dir.exists() and any(slot_dir.iterdir()):
            raise SlotOccupiedError(
                f"Slot folder {slot_dir} has files that belong to no workspace.",
                details={"slot": slot, "files": sorted(p.name for p in slot_dir.iterdir())[:20]},
                remedy="Move those files away (or into a workspace) and mount again.",
            )
        try:
            with self._db.transaction() as conn:
                self._rows.insert_mount(conn, slot, workspace_id)
        except ConflictError:
            raise SlotOccupiedError(f"Slot '{slot}' was just taken.", details={"slot": slot}) from None

    def _release_slot(self, slot: str) -> None:
        core = self._core
        with self._db.transaction() as conn:
            self._rows.delete_mount(conn, slot)
        shutil.rmtree(core.paths.slot(slot), ignore_errors=True)
        core.paths.slot_index(slot).unlink(missing_ok=True)
        core.paths.slot(slot).mkdir(parents=True, exist_ok=True)

    def _mount_info(self, workspace: str, slot: str) -> MountInfo:
        core = self._core
        path = core.paths.slot(slot)
        files = len(self._repo.list_files(self._repo.branch_head(workspace)))
        thoughts, _ = self._thoughts.page(workspace, 5, 0)
        info = core.info(core.workspace(workspace))
        metric = info.best_result.metric if info.best_result else None
        trend = [r.metric_value for r in reversed(self._records.finalized(workspace, TREND_POINTS, metric))]
        return MountInfo(
            workspace=info,
            slot=slot,
            slot_path=str(path),
            files=files,
            recent_thoughts=[row.thought for row in thoughts],
            pending_finalizations=[
                r.pipeline_run_id for r in self._records.unfinalized(workspace, 20) if r.pipeline_run_id
            ],
            recent_trend=[value for value in trend if value is not None],
        )

    def hibernate(self, slot: str) -> HibernateInfo:
        """Save the slot if dirty, then empty it."""
        core = self._core
        mount = core.mounted(slot)
        ws = core.workspace(mount.workspace)
        path = core.slot_path(slot)
        index = core.paths.slot_index(slot)
        with core.locked(ws.name):
            result = self._sync.save(ws, path, index, f"Saved on hibernate of slot {slot}", "hibernate")
            unversioned = self._repo.untracked_files(path, index)
            self._release_slot(slot)
        return HibernateInfo(
            workspace=ws.name,
            slot=slot,
            saved_version=VersionInfo.of(result.version) if result.created and result.version else None,
            removed_unversioned=unversioned[:MAX_LISTED],
        )

    def is_dirty(self, slot: str) -> bool | None:
        """True when the slot differs from its last version (None: unknown, see slot_is_dirty)."""
        return self.slot_is_dirty(slot, self._core.mounted(slot).workspace)

    def slot_is_dirty(self, slot: str, workspace: str) -> bool | None:
        """Dirty check for a slot already known to hold ``workspace`` (touches no database).

        None when the project's disk is full or read-only: the check writes the slot's index.
        """
        core = self._core
        try:
            with core.locked(workspace):
                changes = self._sync.pending_changes(
                    core.slot_path(slot), core.paths.slot_index(slot), workspace
                )
        except (GoldfishError, OSError) as exc:
            if disk_fault(exc) is None:
                raise
            return None
        return bool(changes)

    def inspect(
        self, name: str, version_limit: int, version_offset: int, include: Sequence[str]
    ) -> WorkspaceDetail:
        """Goal, versions with tags, mount state and (optionally) the pipeline text."""
        core = self._core
        ws = core.workspace_or_slot(name)
        versions, total = self._rows.versions(
            ws.id, include_pruned=False, limit=version_limit, offset=version_offset
        )
        info = core.info(ws)
        dirty = self.is_dirty(info.mounted_slot) if info.mounted_slot else None
        pipeline = None
        if "pipeline" in include:
            pipeline = core.files_of(ws).read_text("pipeline.yaml")
        return WorkspaceDetail(
            workspace=info,
            versions=[VersionInfo.of(v) for v in versions],
            versions_total=total,
            dirty=dirty,
            pipeline=pipeline,
        )

    def delete(self, workspace: str) -> DeleteInfo:
        """Delete a workspace that is not mounted; its history stays in the store, hidden."""
        core = self._core
        ws = core.workspace_or_slot(workspace)
        with core.locked(ws.name):
            mount = self._rows.mount_of_workspace(ws.id)
            if mount is not None:
                raise WorkspaceMountedError(
                    f"Workspace '{ws.name}' is mounted in slot '{mount.slot}'.",
                    details={"workspace": ws.name, "slot": mount.slot},
                    remedy=f"Hibernate slot '{mount.slot}' first, then delete.",
                )
            kept = self._rows.version_counts([ws.id]).get(ws.id, 0)
            self._repo.archive_workspace(ws.name, f"{ws.name}-{ws.id}")
            with self._db.transaction() as conn:
                self._rows.mark_deleted(conn, ws.id)
        return DeleteInfo(workspace=ws.name, versions_kept=kept)
