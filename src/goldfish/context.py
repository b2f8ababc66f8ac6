"""ServerContext: config, database and services of one project, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from goldfish.config import GoldfishConfig, load_config
from goldfish.db.audit import AuditRepository
from goldfish.db.database import Database
from goldfish.db.thoughts import ThoughtRepository
from goldfish.memory.overview import OverviewService
from goldfish.memory.state_md import StateWriter
from goldfish.memory.thoughts import ThoughtService
from goldfish.paths import ProjectPaths
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.service import WorkspaceService
from goldfish.workspaces.versions import VersionService


@dataclass
class ServerContext:
    """Everything a tool needs, wired with explicit dependencies."""

    config: GoldfishConfig
    paths: ProjectPaths
    db: Database
    core: WorkspaceCore
    workspaces: WorkspaceService
    versions: VersionService
    thoughts: ThoughtService
    audit: AuditRepository
    state: StateWriter
    overview: OverviewService

    @classmethod
    def open(cls, root: Path) -> ServerContext:
        """Load the project at ``root`` (config, database migrations, dev repo)."""
        config = load_config(root)
        paths = ProjectPaths.of(root, config)
        db = Database(paths.database)
        repo = DevRepo(paths.dev_repo)
        repo.initialize()
        core = WorkspaceCore(config, paths, db, repo)
        thought_rows = ThoughtRepository(db)
        audit = AuditRepository(db)
        workspaces = WorkspaceService(core, thought_rows)
        return cls(
            config=config,
            paths=paths,
            db=db,
            core=core,
            workspaces=workspaces,
            versions=VersionService(core),
            thoughts=ThoughtService(core, thought_rows),
            audit=audit,
            state=StateWriter(core, thought_rows),
            overview=OverviewService(core, workspaces, audit),
        )

    def startup(self) -> None:
        """Repair what an interrupted process left behind and refresh STATE.md."""
        self.core.sync.reconcile_all()
        self.state.write()

    def close(self) -> None:
        """Release the database connections."""
        self.db.close()
