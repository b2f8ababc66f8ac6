"""Shared lookups of the workspace services: names, slots, versions and locks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from goldfish.config import GoldfishConfig
from goldfish.db.records import RecordRepository, RecordRow
from goldfish.db.runs import RunRepository
from goldfish.db.workspaces import MountRow, VersionRow, WorkspaceRepository, WorkspaceRow
from goldfish.errors import (
    InvalidPathError,
    SlotEmptyError,
    SlotNotFoundError,
    TagNotFoundError,
    VersionNotFoundError,
    WorkspaceBusyError,
    WorkspaceNotFoundError,
    suggestion_suffix,
)
from goldfish.locks import file_lock
from goldfish.paths import ProjectPaths
from goldfish.validation import TAG_NAME, WORKSPACE_NAME, slot_name, version_number
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.files import SlotFiles, VersionFiles
from goldfish.workspaces.models import BestResult, LastRun, VersionInfo, WorkspaceInfo
from goldfish.workspaces.sync import SlotSync

_VERSION_LIKE = re.compile(r"v?[0-9]+")


class WorkspaceCore:
    """Lookups and locks every workspace operation needs, over repositories it is given.

    The repositories stay readable as attributes for the faces that still look rows up
    directly; a service gets the ones it uses from the composition root instead.
    """

    def __init__(
        self,
        config: GoldfishConfig,
        paths: ProjectPaths,
        repo: DevRepo,
        rows: WorkspaceRepository,
        records: RecordRepository,
        runs: RunRepository,
        sync: SlotSync,
    ):
        self.config = config
        self.paths = paths
        self.repo = repo
        self.rows = rows
        self.records = records
        self.runs = runs
        self.sync = sync

    # -- locks ------------------------------------------------------------------------------
    @contextmanager
    def locked(self, workspace: str, timeout_seconds: float = 30.0) -> Iterator[None]:
        """Exclusive access to one workspace across threads and processes."""
        with file_lock(
            self.paths.locks / f"ws-{workspace}.lock", f"Workspace '{workspace}'", timeout_seconds
        ):
            yield

    # -- lookups ----------------------------------------------------------------------------
    def workspace(self, name: str) -> WorkspaceRow:
        """A live workspace by name.

        Raises:
            WorkspaceNotFoundError: with a did-you-mean.
        """
        row = self.rows.get(name) if isinstance(name, str) else None
        if row is None:
            names = self.rows.names()
            raise WorkspaceNotFoundError(
                f"No workspace named {str(name)[:100]!r}{suggestion_suffix(str(name)[:100], names)}.",
                details={"workspace": str(name)[:100], "existing": names[:50]},
            )
        if row.name in self.sync.suspect:
            self._repair(row)
        return row

    def _repair(self, row: WorkspaceRow) -> None:
        """Repair a workspace whose save failed half-way, unless an operation on it runs right now."""
        try:
            with self.locked(row.name, timeout_seconds=0):
                self.sync.repair_if_suspect(row)
        except (WorkspaceBusyError, OSError):  # busy (that operation repairs it) or the disk refuses
            return

    def workspace_or_slot(self, ref: str) -> WorkspaceRow:
        """Resolve a workspace name, or a mounted slot to its workspace."""
        if isinstance(ref, str) and WORKSPACE_NAME.fullmatch(ref) and self.rows.get(ref) is not None:
            return self.workspace(ref)
        if isinstance(ref, str) and ref in self.config.slots:
            return self.workspace(self.mounted(ref).workspace)
        return self.workspace(ref)

    def check_slot(self, slot: str) -> str:
        """Validate that ``slot`` is one of the configured slots."""
        slot_name(slot)
        if slot not in self.config.slots:
            raise SlotNotFoundError(
                f"No slot named {slot!r}{suggestion_suffix(slot, self.config.slots)}.",
                details={"slot": slot, "slots": self.config.slots},
            )
        return slot

    def slot_path(self, slot: str) -> Path:
        """The slot folder (made again if it was removed); refuses a slot that is itself a link."""
        path = self.paths.slot(slot)
        if path.is_symlink():
            raise InvalidPathError(
                f"Slot folder {path} is a link; slots must be plain folders.", details={"slot": slot}
            )
        # A slot folder removed by hand is a slot whose files were all deleted, not a broken store.
        path.mkdir(parents=True, exist_ok=True)
        return path

    def files_of(self, ws: WorkspaceRow) -> SlotFiles | VersionFiles:
        """The workspace's files: its slot when mounted, else its last saved files."""
        mount = self.rows.mount_of_workspace(ws.id)
        if mount is not None:
            return SlotFiles(self.slot_path(mount.slot))
        return VersionFiles(self.repo, self.repo.branch_head(ws.name))

    def mounted(self, slot: str) -> MountRow:
        """The mount in a configured slot.

        Raises:
            SlotEmptyError: when nothing is mounted there.
        """
        self.check_slot(slot)
        mount = self.rows.mount_of_slot(slot)
        if mount is None:
            raise SlotEmptyError(f"Slot '{slot}' is empty.", details={"slot": slot})
        return mount

    def version(self, ws: WorkspaceRow, ref: str) -> VersionRow:
        """A version of ``ws`` by ``vN`` or by tag."""
        if isinstance(ref, str) and TAG_NAME.fullmatch(ref) and not _VERSION_LIKE.fullmatch(ref):
            number = self.rows.tag_owner(ws.id, ref)
            if number is None:
                raise TagNotFoundError(f"Workspace '{ws.name}' has no tag {ref!r}.", details={"tag": ref})
        else:
            number = version_number(ref)
        row = self.rows.version(ws.id, number)
        if row is None:
            latest = self.rows.latest_version(ws.id)
            raise VersionNotFoundError(
                f"Workspace '{ws.name}' has no version v{number}.",
                details={
                    "workspace": ws.name,
                    "version": f"v{number}",
                    "latest": latest.version if latest else None,
                },
            )
        return row

    def info(self, ws: WorkspaceRow) -> WorkspaceInfo:
        """Summary of one workspace."""
        mount = self.rows.mount_of_workspace(ws.id)
        latest = self.rows.latest_version(ws.id)
        return WorkspaceInfo(
            name=ws.name,
            goal=ws.goal,
            created_at=ws.created_at,
            mounted_slot=mount.slot if mount else None,
            slot_path=str(self.paths.slot(mount.slot)) if mount else None,
            versions=self.rows.version_counts([ws.id]).get(ws.id, 0),
            latest_version=VersionInfo.of(latest) if latest else None,
            parent_workspace=ws.parent_workspace,
            parent_version=f"v{ws.parent_version}" if ws.parent_version else None,
            last_run=self._last_run(ws.name),
            best_result=_best_result(self.best_record(ws.name)),
        )

    def _last_run(self, workspace: str) -> LastRun | None:
        latest = self.runs.list_pipeline_runs(workspace, 1)
        if not latest:
            return None
        run = latest[0]
        return LastRun(
            pipeline_run_id=run.id, state=run.state, version=f"v{run.version_num}", created_at=run.created_at
        )

    def best_record(self, workspace: str) -> RecordRow | None:
        """The best finalized record, judged on the metric and direction of the latest finalization."""
        latest = self.records.finalized(workspace, 1)
        if not latest or latest[0].primary_metric is None or latest[0].direction is None:
            return None
        return self.records.best(workspace, latest[0].primary_metric, latest[0].direction)


def _best_result(row: RecordRow | None) -> BestResult | None:
    if row is None or row.metric_value is None or row.primary_metric is None or row.direction is None:
        return None
    return BestResult(
        record_id=row.id,
        pipeline_run_id=row.pipeline_run_id,
        version=f"v{row.version_num}",
        metric=row.primary_metric,
        value=row.metric_value,
        direction=row.direction,
        ml_outcome=row.ml_outcome,
    )
