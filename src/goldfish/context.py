"""ServerContext: config, database and services of one project, built once per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from goldfish.backends.factory import BackendRegistry
from goldfish.backends.protocol import BackendSettings
from goldfish.config import GoldfishConfig, load_config
from goldfish.data.sources import SourceService
from goldfish.db.audit import AuditRepository
from goldfish.db.database import Database
from goldfish.db.images import ImageBuildRepository
from goldfish.db.metrics import MetricRepository
from goldfish.db.records import RecordRepository
from goldfish.db.runs import RunRepository
from goldfish.db.sources import SourceRepository
from goldfish.db.svs import PatternRepository, SvsRepository
from goldfish.db.thoughts import ThoughtRepository
from goldfish.db.warm_pool import WarmPoolRepository
from goldfish.db.workspaces import WorkspaceRepository
from goldfish.memory.records import RecordService
from goldfish.memory.state_md import StateWriter
from goldfish.memory.thoughts import ThoughtService
from goldfish.paths import ProjectPaths
from goldfish.runs.deps import ExecutorDeps, StageRuntime
from goldfish.runs.driver import DriverDeps, DriverHandOff, PipelineDriver, spawn_driver
from goldfish.runs.planner import InputResolver
from goldfish.runs.service import RunService
from goldfish.runs.svs_findings import SvsService
from goldfish.secrets.resolver import CloudLookup, SecretResolver
from goldfish.secrets.store import SecretStore
from goldfish.storage.factory import open_storage
from goldfish.storage.protocol import Storage
from goldfish.svs.pattern_service import PatternService
from goldfish.workspaces.code_cache import CodeCache
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.service import WorkspaceService
from goldfish.workspaces.sync import SlotSync
from goldfish.workspaces.versions import VersionService

if TYPE_CHECKING:
    from goldfish.backends.docker.base_image import ImageService
    from goldfish.backends.gce.backend import GceBackend
    from goldfish.backends.gce.warm_pool import WarmPoolService
    from goldfish.backups.service import BackupService
    from goldfish.data.promotion import OutputPromoter
    from goldfish.memory.compare import RunComparer
    from goldfish.memory.overview import OverviewService
    from goldfish.memory.plots import MetricPlotter
    from goldfish.runs.folder_import import FolderImporter
    from goldfish.runs.queries import RunQueries
    from goldfish.runs.watch import RunWatcher
    from goldfish.secrets.service import SecretService

log = logging.getLogger("goldfish")


def _contract_mode(config: GoldfishConfig) -> Literal["off", "warn", "block"]:
    if not config.svs.enabled:
        return "off"
    return "block" if config.svs.block_on_contract_violation else "warn"


def _secret_manager(config: GoldfishConfig) -> CloudLookup | None:
    """Secret Manager as the last source of GCE stages' secrets (``gce.secret_manager``)."""
    if not (config.gce.secret_manager and config.gce.project_id):
        return None
    from goldfish.backends.gce.secret_manager import SecretManagerSource  # noqa: PLC0415 - loads lazily

    return SecretManagerSource(config.gce.project_id, config.gce.secret_manager_endpoint)


@dataclass
class ServerContext:
    """Everything a tool needs, wired with explicit dependencies."""

    config: GoldfishConfig
    paths: ProjectPaths
    db: Database
    repo: DevRepo
    workspace_rows: WorkspaceRepository
    record_rows: RecordRepository
    sync: SlotSync
    core: WorkspaceCore
    workspaces: WorkspaceService
    versions: VersionService
    thoughts: ThoughtService
    audit: AuditRepository
    state: StateWriter
    runs: RunRepository
    metrics: MetricRepository
    sources: SourceService
    storage: Storage
    backends: BackendRegistry
    svs_store: SvsRepository
    patterns: PatternService
    builds: ImageBuildRepository
    warm_pool_rows: WarmPoolRepository
    _reaper_stop: threading.Event = field(init=False, default_factory=threading.Event)
    records: RecordService = field(init=False)
    run_service: RunService = field(init=False)
    svs: SvsService = field(init=False)
    secrets: SecretResolver = field(init=False)
    # Set by `goldfish run`: a fork standing by to drive its run (see driver_entry.DriverFork).
    driver_fork: DriverHandOff | None = field(init=False, default=None)

    @classmethod
    def open(cls, root: Path) -> ServerContext:
        """Load the project at ``root`` (config, database migrations, dev repo)."""
        config = load_config(root)
        paths = ProjectPaths.of(root, config)
        db = Database(paths.database)
        repo = DevRepo(paths.dev_repo)
        repo.initialize()
        rows = WorkspaceRepository(db)
        record_rows = RecordRepository(db)
        runs = RunRepository(db)
        sync = SlotSync(db, repo, rows, record_rows, config.max_file_size_mb * 1024 * 1024)
        core = WorkspaceCore(config, paths, repo, rows, record_rows, runs, sync)
        thought_rows = ThoughtRepository(db)
        svs_store = SvsRepository(db)
        patterns = PatternService(PatternRepository(db))
        audit = AuditRepository(db)
        workspaces = WorkspaceService(core, db, rows, repo, sync, record_rows, thought_rows)
        versions = VersionService(core, db, rows, repo, sync)
        metrics = MetricRepository(db)
        roots = [paths.data, *(Path(p) for p in config.data_roots)]
        sources = SourceService(SourceRepository(db), roots, paths.root)
        storage = open_storage(config, paths.storage)
        builds = ImageBuildRepository(db)
        warm_pool = WarmPoolRepository(db)
        backends = BackendRegistry(
            BackendSettings(
                config=config,
                project_root=paths.root,
                venvs=paths.venvs,
                locks=paths.locks,
                builds=builds,
                storage=storage,
                warm_pool=warm_pool,
            )
        )
        context = cls(
            config=config,
            paths=paths,
            db=db,
            repo=repo,
            workspace_rows=rows,
            record_rows=record_rows,
            sync=sync,
            core=core,
            workspaces=workspaces,
            versions=versions,
            thoughts=ThoughtService(core, thought_rows),
            audit=audit,
            state=StateWriter(core, rows, record_rows, thought_rows, runs, svs_store),
            runs=runs,
            metrics=metrics,
            sources=sources,
            storage=storage,
            backends=backends,
            svs_store=svs_store,
            patterns=patterns,
            builds=builds,
            warm_pool_rows=warm_pool,
        )
        context.secrets = SecretResolver(SecretStore(paths.state_dir), cloud=_secret_manager(config))
        # Wired after construction: both call back into the context (settle, spawn a driver).
        context.records = RecordService(config, core, db, rows, record_rows, runs, metrics)
        context.run_service = RunService(
            config,
            core,
            db,
            rows,
            repo,
            versions,
            runs,
            sources,
            record_rows,
            context.records.check_gate,
            context.settle,
            context.spawn_driver,
            context.secrets,
            svs_store,
        )
        context.svs = SvsService(runs, context.svs_store)
        return context

    def warm_pool(self) -> WarmPoolService:
        """The GCE warm pool of this project (the Compute client is created only when a VM is touched)."""
        backend = self.backends.get("gce")
        return cast("GceBackend", backend).pool

    def executor_deps(self) -> ExecutorDeps:
        """What a pipeline driver needs to execute stages."""
        return ExecutorDeps(
            runs=self.runs,
            metrics=self.metrics,
            sources=self.sources,
            storage=self.storage,
            repo=self.repo,
            backends=self.backends,
            scratch=self.paths.scratch,
            code=CodeCache(self.repo, self.paths.code_cache),
            inputs=InputResolver(self.runs, self.sources, self.storage),
            max_attempts=self.config.defaults.max_attempts,
            contracts=_contract_mode(self.config),
            svs=self.config.svs,
            svs_store=self.svs_store,
            patterns=self.patterns,
            secrets=self.secrets,
            runtime=StageRuntime(
                gpu_min_free_mb=self.config.gpu_check.min_free_memory_mb,
                gpu_timeout_seconds=self.config.gpu_check.timeout_seconds,
                telemetry_interval=self.config.defaults.telemetry_interval,
                telemetry_max_points=self.config.defaults.telemetry_max_points,
            ),
        )

    def driver_deps(self) -> DriverDeps:
        """What a pipeline driver needs (inline here, or in a detached driver process)."""
        return DriverDeps(
            runs=self.runs,
            workspaces=self.workspace_rows,
            repo=self.repo,
            executor=self.executor_deps(),
            max_parallel_stages=self.config.defaults.max_parallel_stages,
            on_finish=self.refresh_state,
        )

    def settle(self, pipeline_run_id: str) -> bool:
        """Do inline what needs no backend (cache hits, skips); True when the run is then finished."""
        # Every run submission passes here: the place to see whether an automatic backup is due.
        if self.config.backup.automatic:
            self.backups.schedule_auto()
        driver = PipelineDriver(self.driver_deps(), pipeline_run_id)
        if not self.runs.take_lease(pipeline_run_id, driver.owner, 30.0, 0):
            return False
        try:
            return driver.settle()
        finally:
            self.runs.release_lease(pipeline_run_id, driver.owner)

    def spawn_driver(self, pipeline_run_id: str) -> None:
        """Start a detached driver for a pipeline run (the standing-by ``driver_fork`` when there is one)."""
        if self.driver_fork is not None and self.driver_fork.available:
            self.driver_fork.start(pipeline_run_id)
        else:
            spawn_driver(self.paths.root, pipeline_run_id, self.paths.logs)

    def ensure_driver(self, pipeline_run_id: str) -> None:
        """Start a driver unless a live one holds the run's lease."""
        run = self.runs.pipeline_run(pipeline_run_id)
        if run is None or run.state != "running":
            return
        if run.lease_owner is None or (run.lease_expires_at or 0) < time.time():
            self.spawn_driver(pipeline_run_id)

    def refresh_state(self) -> None:
        """Regenerate STATE.md (never fails the caller)."""
        try:
            self.state.write()
        except Exception:
            log.exception("could not refresh STATE.md")

    def startup(self) -> None:
        """Repair what an interrupted process left behind and refresh STATE.md."""
        self.sync.reconcile_all()
        for run in self.runs.active_pipeline_runs():
            self.ensure_driver(run.id)
        self.state.write()
        if self.config.gce.warm_pool.enabled:
            self._start_reaper()
        if self.config.backup.every_minutes is not None:
            self._every(60.0, self.backups.schedule_auto, "goldfish-backup-clock")

    def _start_reaper(self) -> None:
        """Delete warm-pool VMs past their idle deadline while this server runs (a daemon thread)."""
        period = max(1.0, min(30.0, self.config.gce.warm_pool.idle_timeout_minutes * 60 / 4))
        self._every(period, lambda: self.warm_pool().reap(), "goldfish-warm-reaper")

    def _every(self, period: float, action: Callable[[], object], name: str) -> None:
        """Call ``action`` every ``period`` seconds until :meth:`close` (a daemon thread)."""
        stop = self._reaper_stop

        def loop() -> None:
            while not stop.wait(period):
                try:
                    action()
                except Exception:  # a periodic task must outlive hiccups (cloud, disk); they are logged
                    log.exception("%s", name)

        threading.Thread(target=loop, name=name, daemon=True).start()

    def close(self) -> None:
        """Stop the reaper and release the database connections."""
        self._reaper_stop.set()
        if "backups" in self.__dict__:  # built (and so maybe backing up) only if something used it
            self.backups.wait_auto()
        self.db.close()

    # -- Services the faces (tools, CLI) call, built on first use ---------------------------------
    @cached_property
    def folder_imports(self) -> FolderImporter:
        """``goldfish run DIR``: a plain folder run as a workspace."""
        from goldfish.runs.folder_import import FolderImporter  # noqa: PLC0415 - only `goldfish run` needs it

        return FolderImporter(self.config, self.paths, self.core, self.workspace_rows, self.workspaces)

    @cached_property
    def run_watch(self) -> RunWatcher:
        """Following a pipeline run until it ends (run(wait=true), ``goldfish run --wait``)."""
        from goldfish.runs.watch import RunWatcher  # noqa: PLC0415 - only waits need it

        return RunWatcher(self.db, self.run_service.submission, self.ensure_driver)

    @cached_property
    def promotions(self) -> OutputPromoter:
        """``promote_artifact``: a run's stored output registered as a source."""
        from goldfish.data.promotion import OutputPromoter  # noqa: PLC0415 - only promote_artifact needs it

        return OutputPromoter(self.run_queries.stage_run, self.runs, self.storage, self.sources)

    @cached_property
    def run_queries(self) -> RunQueries:
        """Reads of runs: inspect, list, logs, lineage, metrics; cancel."""
        from goldfish.runs.queries import RunQueries  # noqa: PLC0415

        return RunQueries(
            self.runs, self.metrics, self.storage, self.backends, self.ensure_driver, self.svs.findings
        )

    @cached_property
    def overview(self) -> OverviewService:
        """``status`` and ``dashboard``."""
        from goldfish.backends.gpus import discover  # noqa: PLC0415 - the services below load at first use
        from goldfish.memory.overview import OverviewService  # noqa: PLC0415

        return OverviewService(
            self.core,
            self.workspaces,
            self.audit,
            self.runs,
            self.workspace_rows,
            self.record_rows,
            self.warm_pool_rows if self.config.gce.warm_pool.enabled else None,
            self.svs_store,
            self.patterns,
            host_gpus=lambda: discover().describe(),
        )

    @cached_property
    def images(self) -> ImageService:
        """Base images and image builds."""
        from goldfish.backends.docker.base_image import ImageService  # noqa: PLC0415

        return ImageService(self.config.docker, self.builds)

    @cached_property
    def backups(self) -> BackupService:
        """Project backups (made, listed, restored; automatic ones per ``backup``)."""
        from goldfish.backups.service import BackupService  # noqa: PLC0415

        return BackupService(self.config, self.paths, self.db, self.repo, self.runs, self.storage)

    @cached_property
    def secret_service(self) -> SecretService:
        """``list_secrets``: names, where each is set, which stages use it."""
        from goldfish.secrets.service import SecretService  # noqa: PLC0415

        return SecretService(self.secrets, self.config, self.core, self.workspace_rows)

    @cached_property
    def comparer(self) -> RunComparer:
        """``compare_runs``."""
        from goldfish.memory.compare import RunComparer  # noqa: PLC0415

        return RunComparer(
            self.runs, self.metrics, self.records, self.record_rows, self.workspace_rows, self.repo
        )

    @cached_property
    def plotter(self) -> MetricPlotter:
        """``plot_metrics``."""
        from goldfish.memory.plots import MetricPlotter  # noqa: PLC0415

        return MetricPlotter(self.run_queries, self.metrics)
