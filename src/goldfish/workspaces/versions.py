"""Versions of a workspace: save, rollback, diff, tag, prune."""

from __future__ import annotations

import re

from goldfish.db.database import Database
from goldfish.db.workspaces import WorkspaceRepository, WorkspaceRow
from goldfish.errors import (
    ConflictError,
    InvalidArgumentError,
    TagExistsError,
    TagNotFoundError,
    VersionTaggedError,
)
from goldfish.validation import tag_name, text, version_number
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.models import DiffFile, DiffInfo, SaveInfo, VersionAction, VersionInfo, VersionsPage
from goldfish.workspaces.sync import MAX_LISTED, SlotSync, SyncResult

MAX_MESSAGE_LENGTH = 4000
MAX_PATCH_BYTES = 200_000
_VERSION_SHAPED = re.compile(r"v?[0-9]+")


def _save_info(workspace: str, slot: str, result: SyncResult) -> SaveInfo:
    return SaveInfo(
        workspace=workspace,
        slot=slot,
        created=result.created,
        version=VersionInfo.of(result.version) if result.version else None,
        files_changed=len(result.changes),
        changed_files=[c.path for c in result.changes[:MAX_LISTED]],
    )


class VersionService:
    """Everything that reads or writes a workspace's versions."""

    def __init__(
        self, core: WorkspaceCore, db: Database, rows: WorkspaceRepository, repo: DevRepo, sync: SlotSync
    ):
        self._core = core
        self._db = db
        self._rows = rows
        self._repo = repo
        self._sync = sync

    def save(self, slot: str, message: str, source: str = "save") -> SaveInfo:
        """Sync the slot into a new version (no new version when nothing changed)."""
        core = self._core
        text(message, "message", MAX_MESSAGE_LENGTH)
        mount = core.mounted(slot)
        ws = core.workspace(mount.workspace)
        with core.locked(ws.name):
            result = self._sync.save(
                ws, core.slot_path(slot), core.paths.slot_index(slot), message.strip(), source
            )
        return _save_info(ws.name, slot, result)

    def rollback(self, slot: str, version: str) -> SaveInfo:
        """Make the slot match ``version`` and record that as a new version; unsaved work is saved first."""
        core = self._core
        mount = core.mounted(slot)
        ws = core.workspace(mount.workspace)
        target = core.version(ws, version)
        path, index = core.slot_path(slot), core.paths.slot_index(slot)
        with core.locked(ws.name):
            self._sync.save(ws, path, index, f"Saved before rollback to {target.version}", "save")
            self._repo.switch(path, index, target.commit_sha)
            head = self._repo.branch_head(ws.name)
            commit = self._repo.commit(
                ws.name, self._repo.tree_of(target.commit_sha), head, f"Rollback to {target.version}"
            )
            changes = self._repo.staged_changes(index, head)
            row = self._sync.record(ws, commit, f"Rollback to {target.version}", "rollback", len(changes))
        return _save_info(ws.name, slot, SyncResult(version=row, created=True, changes=changes))

    # -- diff -------------------------------------------------------------------------------
    def diff(self, target: str, against: str | None) -> DiffInfo:
        """File-level and unified diff between refs (``w1``, ``ws``, ``ws@v3``, ``ws@tag``).

        Without ``against``: a slot (or a mounted workspace) is compared with its last version,
        an unmounted workspace shows what its last version changed, and ``ws@vN`` what vN changed.
        """
        for field, ref in (("target", target), ("against", against)):
            if ref is not None and (not isinstance(ref, str) or not ref.strip() or len(ref) > 200):
                raise InvalidArgumentError(
                    f"{field} must be a slot, a workspace or workspace@version.", details={"field": field}
                )
        if against is None:
            target = self._implicit_target(target)
            old_tree, old_label = self._default_base(target)
        else:
            old_tree, old_label = self._tree(against, "against")
        new_tree, new_label = self._tree(target, "target")
        result = self._repo.diff_trees(old_tree, new_tree, MAX_PATCH_BYTES)
        files = [DiffFile.model_validate(item) for item in result.files]
        return DiffInfo(
            target=new_label,
            against=old_label,
            files=files,
            files_changed=len(files),
            patch=result.patch,
            truncated=result.truncated,
        )

    def _implicit_target(self, target: str) -> str:
        core = self._core
        if not isinstance(target, str) or "@" in target or target in core.config.slots:
            return target
        ws = core.workspace(target)
        mount = self._rows.mount_of_workspace(ws.id)
        if mount is not None:
            return mount.slot
        latest = self._rows.latest_version(ws.id)
        return f"{ws.name}@{latest.version}" if latest else ws.name

    def _tree(self, ref: str, field: str) -> tuple[str, str]:
        """Resolve a diff ref to (tree id, label)."""
        core = self._core
        if not isinstance(ref, str) or not ref or len(ref) > 200:
            raise InvalidArgumentError(
                f"{field} must be a slot, a workspace or workspace@version.", details={"field": field}
            )
        if "@" in ref:
            name, _, version = ref.partition("@")
            ws = core.workspace_or_slot(name)
            row = core.version(ws, version)
            return self._repo.tree_of(row.commit_sha), f"{ws.name}@{row.version}"
        if ref in core.config.slots:
            mount = core.mounted(ref)
            with core.locked(mount.workspace):
                index = core.paths.slot_index(ref)
                self._repo.stage_slot(core.slot_path(ref), index)
                return self._repo.write_tree(index), f"{ref} (unsaved files of {mount.workspace})"
        ws = core.workspace(ref)
        return self._repo.tree_of(self._repo.branch_head(ws.name)), ws.name

    def _default_base(self, target: str) -> tuple[str, str]:
        """The tree a lone ref is compared with: the version before it, or the slot's last version."""
        core = self._core
        if isinstance(target, str) and "@" in target:
            name, _, version = target.partition("@")
            ws = core.workspace_or_slot(name)
            number = core.version(ws, version).version_num
            previous = self._rows.version(ws.id, number - 1) if number > 1 else None
        else:
            ws = core.workspace_or_slot(target)
            previous = self._rows.latest_version(ws.id)
            if previous is not None:
                return self._repo.tree_of(self._repo.branch_head(ws.name)), f"{ws.name}@{previous.version}"
        if previous is None:
            return self._repo.tree_of(ws.base_commit), f"{ws.name} (start)"
        return self._repo.tree_of(previous.commit_sha), f"{ws.name}@{previous.version}"

    # -- manage -----------------------------------------------------------------------------
    def manage(
        self,
        workspace: str,
        action: VersionAction,
        *,
        version: str | None,
        tag: str | None,
        from_version: str | None,
        to_version: str | None,
        include_pruned: bool,
        limit: int,
        offset: int,
    ) -> VersionsPage:
        """List, tag, untag, prune, unprune or prune everything before a tag."""
        core = self._core
        ws = core.workspace_or_slot(workspace)
        changed: list[str] = []
        skipped: list[str] = []
        if action != "list":
            with core.locked(ws.name):
                changed, skipped = self._apply(ws, action, version, tag, from_version, to_version)
        versions, total = self._rows.versions(
            ws.id, include_pruned=include_pruned, limit=limit, offset=offset
        )
        return VersionsPage(
            workspace=ws.name,
            action=action,
            changed=changed,
            skipped=skipped,
            versions=[VersionInfo.of(v) for v in versions],
            total=total,
        )

    def _apply(
        self,
        ws: WorkspaceRow,
        action: VersionAction,
        version: str | None,
        tag: str | None,
        from_version: str | None,
        to_version: str | None,
    ) -> tuple[list[str], list[str]]:
        if action == "tag":
            return self._tag(ws, _required(version, "version", action), tag_name(tag)), []
        if action == "untag":
            return self._untag(ws, tag_name(tag)), []
        if action == "prune_before_tag":
            boundary = self._rows.tag_owner(ws.id, tag_name(tag))
            if boundary is None:
                raise TagNotFoundError(f"Workspace '{ws.name}' has no tag {tag!r}.", details={"tag": tag})
            return self._set_pruned(ws, list(range(1, boundary)), pruned=True)
        numbers = self._selected(ws, version, from_version, to_version)
        return self._set_pruned(ws, numbers, pruned=action == "prune")

    def _selected(
        self, ws: WorkspaceRow, version: str | None, from_version: str | None, to_version: str | None
    ) -> list[int]:
        if version is not None:
            return [self._core.version(ws, version).version_num]
        if from_version is None and to_version is None:
            raise InvalidArgumentError(
                "Say which versions: version, or from_version/to_version.", details={"field": "version"}
            )
        low = version_number(from_version, "from_version") if from_version is not None else 1
        high = version_number(to_version, "to_version") if to_version is not None else 10**9
        if low > high:
            raise InvalidArgumentError("from_version is after to_version.", details={"field": "from_version"})
        return self._rows.version_numbers_between(ws.id, low, high)

    def _set_pruned(
        self, ws: WorkspaceRow, numbers: list[int], *, pruned: bool
    ) -> tuple[list[str], list[str]]:
        rows = [self._rows.version(ws.id, n) for n in numbers]
        present = [row for row in rows if row is not None]
        tagged = [row.version for row in present if row.tags]
        if pruned and tagged and len(present) == 1:
            raise VersionTaggedError(
                f"{tagged[0]} is tagged ({', '.join(present[0].tags)}); tagged versions cannot be pruned.",
                details={"version": tagged[0], "tags": present[0].tags},
            )
        targets = [row for row in present if not row.tags and row.pruned != pruned]
        with self._db.transaction() as conn:
            self._rows.set_pruned(conn, ws.id, [row.version_num for row in targets], pruned)
        return [row.version for row in targets], tagged if pruned else []

    def _tag(self, ws: WorkspaceRow, version: str, tag: str) -> list[str]:
        core = self._core
        if _VERSION_SHAPED.fullmatch(tag):
            raise InvalidArgumentError(
                f"Tag '{tag}' looks like a version number; it could never be used as a reference.",
                details={"field": "tag", "tag": tag},
                remedy="Choose a name that is not vN or a bare number, e.g. 'best' or 'baseline-2'.",
            )
        row = core.version(ws, version)
        owner = self._rows.tag_owner(ws.id, tag)
        if owner is not None:
            raise TagExistsError(
                f"Tag '{tag}' is already on v{owner}.", details={"tag": tag, "version": f"v{owner}"}
            )
        try:
            with self._db.transaction() as conn:
                self._rows.add_tag(conn, ws.id, row.id, tag)
        except ConflictError:
            raise TagExistsError(f"Tag '{tag}' was just used.", details={"tag": tag}) from None
        return [row.version]

    def _untag(self, ws: WorkspaceRow, tag: str) -> list[str]:
        owner = self._rows.tag_owner(ws.id, tag)
        if owner is None:
            raise TagNotFoundError(f"Workspace '{ws.name}' has no tag '{tag}'.", details={"tag": tag})
        with self._db.transaction() as conn:
            self._rows.remove_tag(conn, ws.id, tag)
        return [f"v{owner}"]


def _required(value: str | None, field: str, action: str) -> str:
    if value is None:
        raise InvalidArgumentError(f"action '{action}' needs {field}.", details={"field": field})
    return value
