"""``run()``: validate, version the code, record the plan, and hand it to a pipeline driver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goldfish.backends.factory import resolve_backend_name
from goldfish.backends.gpus import LOCAL_GPU_BACKENDS, HostGpus, discover, require
from goldfish.backends.profiles import Profile, all_profiles, get_profile
from goldfish.config import GoldfishConfig
from goldfish.data.sources import SourceService
from goldfish.db.database import Database
from goldfish.db.records import RecordRepository
from goldfish.db.runs import RunRepository
from goldfish.db.svs import SvsRepository
from goldfish.db.workspaces import WorkspaceRepository, WorkspaceRow
from goldfish.errors import GoldfishError, InvalidArgumentError, RunNotFoundError
from goldfish.pipelines.graph import dependencies, downstream_closure, topological_order
from goldfish.pipelines.models import PipelineDef
from goldfish.pipelines.validator import FileReader, load_pipeline
from goldfish.runs.models import RunSubmission, StageRunInfo
from goldfish.runs.recording import PlannedStage, record_run
from goldfish.runs.requests import (
    RunRequest,
    check_config_override,
    check_inputs_override,
    parse_reason,
    parse_results_spec,
    select_stages,
)
from goldfish.runs.stage_config import load_stage_settings, refuse_secret_keys, stage_override
from goldfish.runs.timeline import StepClock
from goldfish.secrets.resolver import SecretResolver
from goldfish.states import TERMINAL, PipelineState, StageState
from goldfish.svs.review import ModelReviewer, PreRunReview, pre_run_review, review_files, unified_diff
from goldfish.validation import pipeline_name
from goldfish.workspaces.core import WorkspaceCore
from goldfish.workspaces.dev_repo import DevRepo
from goldfish.workspaces.files import VersionFiles
from goldfish.workspaces.sync import version_tag
from goldfish.workspaces.versions import VersionService


class ReviewBlockedError(GoldfishError):
    """The pre-run review found an error-level problem; nothing was saved or launched."""

    code = "REVIEW_BLOCKED"
    default_remedy = "Fix the problems in details.findings and run again (or set svs.block_on: never)."

    def __init__(self, review: PreRunReview):
        errors = [f for f in review.findings if f.level == "error"]
        super().__init__(
            "The pre-run review stopped the run: " + "; ".join(f"{f.stage}: {f.message}" for f in errors[:5]),
            details={"findings": [f.as_json() for f in review.findings], "reviewed_by": review.reviewed_by},
        )


class RunService:
    """Submits pipeline runs; drivers (in-process for cache hits, detached otherwise) execute them."""

    def __init__(
        self,
        config: GoldfishConfig,
        core: WorkspaceCore,
        db: Database,
        rows: WorkspaceRepository,
        repo: DevRepo,
        versions: VersionService,
        runs: RunRepository,
        sources: SourceService,
        records: RecordRepository,
        gate: Callable[[str], None],
        settle: Callable[[str], bool],
        spawn: Callable[[str], None],
        secrets: SecretResolver,
        svs_store: SvsRepository | None = None,
        host_gpus: Callable[[], HostGpus] = discover,
    ):
        self._config = config
        self._core = core
        self._db = db
        self._rows = rows
        self._repo = repo
        self._versions = versions
        self._runs = runs
        self._sources = sources
        self._records = records
        self._gate = gate
        self._settle = settle
        self._spawn = spawn
        self._svs_store = svs_store
        self._secrets = secrets
        self._host_gpus = host_gpus

    def build_request(
        self,
        workspace: str,
        stages: list[str] | None,
        pipeline: str | None,
        config_override: object,
        inputs_override: object,
        reason: object,
        results_spec: object,
        experiment_group: str | None,
        dry_run: bool,
        use_cache: bool,
        profile: str | None,
    ) -> RunRequest:
        """Validate the arguments of ``run`` (nothing is written)."""
        if experiment_group is not None and (not experiment_group.strip() or len(experiment_group) > 200):
            raise InvalidArgumentError(
                "experiment_group must be 1-200 characters.", details={"field": "experiment_group"}
            )
        if profile is not None:
            get_profile(self._config, profile)
        if pipeline is not None:
            pipeline_name(pipeline)
        checked_override = check_config_override(config_override)
        refuse_secret_keys(checked_override)
        return RunRequest(
            workspace=workspace,
            stages=stages,
            pipeline=pipeline,
            config_override=checked_override,
            inputs_override=check_inputs_override(inputs_override),
            reason=parse_reason(reason),
            results_spec=None if dry_run and results_spec is None else parse_results_spec(results_spec),
            experiment_group=experiment_group,
            dry_run=dry_run,
            use_cache=use_cache,
            profile=profile,
        )

    def review(
        self, request: RunRequest, reviewers: list[ModelReviewer] | None = None
    ) -> PreRunReview | None:
        """The pre-run review of the workspace's files as they are now (what ``submit`` runs first)."""
        return self._reviewed(request, reviewers)[-1]

    def _reviewed(
        self, request: RunRequest, reviewers: list[ModelReviewer] | None
    ) -> tuple[WorkspaceRow, str | None, list[PlannedStage], PreRunReview | None]:
        """Load and plan the pipeline, then review it (execution.md steps 1, 3 and 3b)."""
        ws = self._core.workspace_or_slot(request.workspace)
        mount = self._rows.mount_of_workspace(ws.id)
        files = self._core.files_of(ws)
        pipeline, selected, planned = self._planned(files, request)
        configs = {p.name: p.config for p in planned}

        def diff() -> str | None:
            rels = review_files(pipeline, request.pipeline, selected)
            return self._changes_since_success(ws.name, files, rels)

        review = pre_run_review(
            self._config.svs, files, pipeline, request.pipeline, selected, configs, diff, reviewers
        )
        return ws, mount.slot if mount else None, planned, review

    def _changes_since_success(self, workspace: str, files: FileReader, rels: list[str]) -> str | None:
        """The diff of the reviewed files since the workspace's last successful version (None if none)."""
        runs = self._runs.list_pipeline_runs(workspace, 100)
        done = next((r for r in runs if r.state == PipelineState.COMPLETED.value), None)
        if done is None:
            return None
        commit = self._repo.resolve(f"refs/tags/{version_tag(workspace, done.version_num)}")
        if commit is None:
            return None
        return unified_diff(VersionFiles(self._repo, commit), files, rels)

    def submit(self, request: RunRequest, reviewers: list[ModelReviewer] | None = None) -> RunSubmission:
        """Review, version the workspace, record the pipeline run and its stages, and start driving it.

        Raises:
            ReviewBlockedError: when the pre-run review found an error and ``svs.block_on`` is error.
        """
        clock = StepClock()
        with clock.step("plan"):
            ws, slot, planned, review = self._reviewed(request, reviewers)
        if review is not None and review.blocked:
            raise ReviewBlockedError(review)
        if request.dry_run:
            from goldfish.runs.imports import plan_scopes  # noqa: PLC0415 - the AST work is for plans only

            code_scope = plan_scopes(self._core.files_of(ws))
            return RunSubmission(
                pipeline_run_id=None,
                workspace=ws.name,
                version=None,
                version_created=False,
                state="dry_run",
                dry_run=True,
                finished=True,
                stages=[
                    {
                        "stage": p.name,
                        "module": p.module,
                        "backend": p.backend,
                        "profile": p.profile,
                        "timeout_seconds": p.timeout,
                        "config": p.config,
                        "env": p.env,
                        "secrets": p.secrets,
                        "gpus": p.gpus,
                        "code": code_scope(p.module).describe(),
                    }
                    for p in planned
                ],
                review=review.as_json() if review is not None else None,
            )
        self._gate(ws.name)
        with clock.step("version_save"):
            version_num, created = self._version_for_run(ws, slot, request)
        db, runs, records = self._db, self._runs, self._records
        run_id = record_run(db, runs, records, ws, version_num, request, planned, clock=clock)
        if review is not None and self._svs_store is not None:
            found = [f.as_json() for f in review.findings]
            self._svs_store.save_review(
                run_id, review.reviewed_by, review.why, found, review.model_text, False
            )
        self._start(run_id, clock)
        return self.submission(run_id, created)

    def _start(self, run_id: str, clock: StepClock) -> None:
        """Settle what needs no process inline, else hand the run to a detached driver."""
        with clock.step("settle"):
            finished = self._settle(run_id)
        if not finished:
            with clock.step("driver_spawn"):
                self._spawn(run_id)
        clock.flush(self._runs, run_id)

    def plan(self, files: FileReader, request: RunRequest) -> list[PlannedStage]:
        """Validate the pipeline and stage configs among ``files`` and plan the selected stages.

        Raises:
            PipelineInvalidError: listing every problem; ``YamlFileError`` for a refused file.
        """
        return self._planned(files, request)[2]

    def _planned(
        self, files: FileReader, request: RunRequest
    ) -> tuple[PipelineDef, list[str], list[PlannedStage]]:
        """The pipeline, the selected stages in order, and their plans."""
        pipeline = load_pipeline(files, request.pipeline, self._sources.names())
        selected = select_stages(request.stages, topological_order(dependencies(pipeline)))
        planned = [self._plan_stage(pipeline, name, files, request, selected) for name in selected]
        self._preflight(planned)
        return pipeline, selected, planned

    def _preflight(self, planned: list[PlannedStage]) -> None:
        """Refuse before anything is saved or launched: a secret with no value, too few local GPUs."""
        for stage in planned:
            self._secrets.check(stage.secrets, f"stage '{stage.name}'", cloud=stage.backend == "gce")
        local = [stage for stage in planned if stage.gpus and stage.backend in LOCAL_GPU_BACKENDS]
        if local:
            host = self._host_gpus()
            for stage in local:
                require(stage.gpus, host, stage.name)

    def _plan_stage(
        self, pipeline: PipelineDef, name: str, files: FileReader, request: RunRequest, selected: list[str]
    ) -> PlannedStage:
        stage = next(s for s in pipeline.stages if s.name == name)
        override = stage_override(request.config_override, name, [s.name for s in pipeline.stages])
        defaults = self._config.defaults
        settings = load_stage_settings(files, name, override, defaults.env, defaults.secrets)
        compute = settings.compute
        profile = request.profile or compute.profile
        # A profile that lives on GCE (h100-spot, ...) takes the stage there unless it names a backend.
        on_gce = profile is not None and get_profile(self._config, profile).backend == "gce"
        backend = resolve_backend_name(
            compute.backend or ("gce" if on_gce else None), self._config.defaults.backend, self._config
        )
        timeout = compute.timeout_seconds or self._config.defaults.timeout_seconds
        return PlannedStage(
            name,
            stage.module or stage.name,
            settings.config,
            backend,
            profile,
            timeout,
            settings.env,
            settings.secrets,
            compute.gpus or 0,
        )

    def _version_for_run(self, ws: WorkspaceRow, slot: str | None, request: RunRequest) -> tuple[int, bool]:
        """Save the slot as a version (or reuse the latest when nothing changed)."""
        description = request.reason if isinstance(request.reason, str) else request.reason["description"]
        if slot is not None:
            saved = self._versions.save(slot, f"Run: {description}", source="run")
            if saved.version is not None:
                return int(saved.version.version[1:]), saved.created
        latest = self._rows.latest_version(ws.id)
        if latest is None:
            raise InvalidArgumentError(
                f"Workspace '{ws.name}' has no saved version to run.",
                details={"workspace": ws.name},
                remedy="Mount it, add pipeline.yaml and modules, then run again.",
            )
        return latest.version_num, False

    def profiles(self) -> list[Profile]:
        """Resource profiles a run may name: the built-in ones and those in goldfish.yaml."""
        return list(all_profiles(self._config).values())

    def submission(self, pipeline_run_id: str, version_created: bool) -> RunSubmission:
        """The current picture of a submitted pipeline run."""
        run = self._runs.pipeline_run(pipeline_run_id)
        if run is None:
            raise RunNotFoundError(f"No pipeline run {pipeline_run_id!r}.")
        stages = self._runs.stages_of(pipeline_run_id)
        record = self._records.of_pipeline_run(run.id)
        record_id = record.id if record else None
        review = self._svs_store.review(run.id) if self._svs_store is not None else None
        infos = [
            StageRunInfo.of(s, [_input(r) for r in self._runs.lineage(s.id, "input")]).model_copy(
                update={"record_id": record_id}
            )
            for s in stages
        ]
        return RunSubmission(
            pipeline_run_id=run.id,
            record_id=record_id,
            workspace=run.workspace,
            version=f"v{run.version_num}",
            version_created=version_created,
            state=run.state,
            dry_run=False,
            stages=infos,
            # The pipeline run, not just its stages: its outcome (and its record's place among the
            # runs waiting for finalize_run) is settled only when the driver closes it.
            finished=run.state != PipelineState.RUNNING.value,
            review=review.as_json() if review is not None else None,
        )

    def resume(self, pipeline_run_id: str, reason: str) -> RunSubmission:
        """Re-run failed, canceled and skipped stages and what depends on them; completed ones are reused."""
        original = self._runs.pipeline_run(pipeline_run_id) if isinstance(pipeline_run_id, str) else None
        if original is None:
            raise RunNotFoundError(
                f"No pipeline run {str(pipeline_run_id)[:100]!r}.",
                details={"pipeline_run_id": str(pipeline_run_id)[:100]},
            )
        stages = self._runs.stages_of(original.id)
        if any(StageState(s.state) not in TERMINAL for s in stages):
            raise InvalidArgumentError(
                f"Pipeline run {original.id} is still running.",
                details={"pipeline_run_id": original.id},
                remedy="Wait for it to finish (or cancel it), then resume.",
            )
        redo = [s.stage for s in stages if s.state != StageState.COMPLETED.value]
        if not redo:
            raise InvalidArgumentError(
                f"Every stage of {original.id} completed; nothing to resume.",
                details={"pipeline_run_id": original.id},
            )
        ws = self._core.workspace(original.workspace)
        version = self._rows.version(ws.id, original.version_num)
        if version is None:
            raise RunNotFoundError(f"The version of {original.id} is gone.")
        files = VersionFiles(self._repo, version.commit_sha)
        pipeline = load_pipeline(files, original.pipeline, self._sources.names())
        deps = dependencies(pipeline)
        wanted = downstream_closure(deps, redo) & {s.stage for s in stages}
        selected = [name for name in topological_order(deps) if name in wanted]
        request = RunRequest(
            workspace=ws.name,
            stages=selected,
            pipeline=original.pipeline,
            config_override=original.config_override,
            inputs_override=original.inputs_override,
            reason=parse_reason(reason),
            results_spec=original.results_spec,
            experiment_group=original.experiment_group,
            dry_run=False,
            use_cache=original.use_cache,
            profile=original.profile,
        )
        planned = [self._plan_stage(pipeline, name, files, request, selected) for name in selected]
        self._preflight(planned)
        clock = StepClock()
        db, runs, records = self._db, self._runs, self._records
        run_id = record_run(db, runs, records, ws, original.version_num, request, planned, original.id, clock)
        self._carry_review(original.id, run_id)
        self._start(run_id, clock)
        return self.submission(run_id, False)

    def _carry_review(self, original: str, resumed: str) -> None:
        """A resumed run runs the same version: the original's pre-run review applies, and says so."""
        earlier = self._svs_store.review(original) if self._svs_store is not None else None
        if self._svs_store is None or earlier is None:
            return
        note = f"the pre-run review of {original} (the same version)"
        why = f"{earlier.why}; {note}" if earlier.why else note
        self._svs_store.save_review(
            resumed, earlier.reviewed_by, why, earlier.findings, earlier.model_text, False
        )


def _input(row: Any) -> dict[str, Any]:
    return {
        "name": row.signal,
        "type": row.type,
        "uri": row.uri,
        "content_hash": row.content_hash,
        "producer_run_id": row.producer_run_id,
        "source": row.source_name,
    }
