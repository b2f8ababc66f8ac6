"""GceBackend: stage attempts on Compute Engine VMs, watched through the bucket.

``prepare`` builds the stage image with the local engine and pushes it to
``gce.image_registry``. ``launch`` uploads the bundle, inputs and ``job.json``, then hands the
job to a warm VM (ack within a bounded wait) or launches a VM cold (zones in order, spot →
on-demand). ``status`` reads the run's exit code, preemption and failure objects, the VM's
state and the heartbeat age — a handful of single-object reads, whatever the number of runs —
and mirrors the logs into the local run folder so metrics and heartbeats flow as they do
locally. The VM never calls the Compute API: the server deletes what it owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from goldfish.backends.container import CONTAINER_UID, ImageNotPreparedError, Limits, project_label
from goldfish.backends.docker.adaptor import connect
from goldfish.backends.docker.images import StageImageRequest, ensure_stage_image, push_image
from goldfish.backends.gce.compute import ComputeApi
from goldfish.backends.gce.config_check import GceNotConfiguredError, missing_gce_settings
from goldfish.backends.gce.connection import project_bucket
from goldfish.backends.gce.instances import (
    InstanceBody,
    body_from_profile,
    check_provisioning,
    image_source,
    instance_name,
    label_value,
    standard_model_offered,
)
from goldfish.backends.gce.jobs import JobSettings, job_pointer, registry_login_host
from goldfish.backends.gce.launcher import launch_cold
from goldfish.backends.gce.run_state import (
    ended,
    json_object,
    mirror_logs,
    stale_heartbeat,
    stopped_without_exit_code,
)
from goldfish.backends.gce.startup import startup_files
from goldfish.backends.gce.upload import upload_job
from goldfish.backends.gce.warm_pool import WarmPoolService, WarmPoolUnavailableError
from goldfish.backends.profiles import Profile, all_profiles, get_profile
from goldfish.backends.protocol import BackendSettings, BackendStatus, Capabilities, Handle, OnBuild
from goldfish.backends.spec import RunSpec, check_env, read_log
from goldfish.errors import ConfigError, GoldfishError
from goldfish.paths import ProjectPaths
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage
from goldfish.timeutil import now_iso

log = logging.getLogger("goldfish.gce")
MAX_STATUS_ERRORS = 30  # failed checks in a row (about a minute at the default interval) → lost
DEFAULT_PROFILE = "cpu-large"
# A VM runs one stage: its container gets the machine (no memory/CPU caps unless the profile sets
# them), room for many DataLoader workers, and a /dev/shm far above docker's 64 MB default.
VM_PIDS_LIMIT = 65536
VM_SHM_SIZE = "64g"  # tmpfs: an upper bound, memory is only used as files are written


class GceBackend:
    """Runs each stage attempt in a container on a Compute Engine VM."""

    name = "gce"
    capabilities = Capabilities(gpu=True, isolation="vm", survives_server_restart=True)

    def __init__(
        self, settings: BackendSettings, api: Callable[[], ComputeApi], pool: WarmPoolService | None
    ) -> None:
        """Built by ``assembly.build``: ``api`` gives the shared Compute adapter, ``pool`` the warm pool."""
        self._settings = settings
        self._config = settings.config
        self._project = project_label(settings.project_root)
        self.api = api
        self._checked: dict[str, float] = {}
        self._errors: dict[str, int] = {}
        self._pool = pool
        self._images_found: set[tuple[str, str]] = set()

    # -- wiring -------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """The project's store, which must be GCS for VMs to reach it."""
        return project_bucket(self._settings)

    @property
    def pool(self) -> WarmPoolService:
        """The project's warm pool."""
        if self._pool is None:
            raise WarmPoolUnavailableError("The gce backend needs the project database for its warm pool.")
        return self._pool

    def _check_config(self) -> None:
        missing = missing_gce_settings(self._config)
        if missing:
            raise GceNotConfiguredError(
                f"The gce backend is not configured: missing {', '.join(missing)}.",
                details={"missing": missing},
            )

    def profile(self, spec: RunSpec) -> Profile:
        """The stage's resource profile (``cpu-large`` when it names none)."""
        return get_profile(self._config, spec.profile or DEFAULT_PROFILE)

    # -- protocol -------------------------------------------------------------------------------
    def prepare(self, spec: RunSpec, on_build: OnBuild) -> RunSpec:
        """Build or reuse the stage image locally, then push it where the VMs pull from."""
        self._check_config()
        _ = self.storage
        requirements = spec.code_dir / "requirements.txt"
        request = StageImageRequest(
            base_image=self._config.docker.base_image,
            requirements=requirements.read_bytes() if requirements.is_file() else None,
            workspace=spec.workspace,
            stage_run_id=spec.stage_run_id,
            log_file=spec.logs_dir / "build.log",
        )
        client = connect()
        local = ensure_stage_image(client, self._settings.builds, self._settings.locks, request, on_build)
        remote = push_image(client, local, str(self._config.gce.image_registry))
        self.api().connect()
        return replace(spec, image=remote)

    def launch(self, spec: RunSpec) -> Handle:
        """Upload the job and start it on a warm VM or a new one; the handle names the VM."""
        if spec.image is None:
            raise ImageNotPreparedError("The stage image was not prepared before launch.")
        check_env(spec.env, spec.secrets)  # a bad key or value is refused before anything reaches the bucket
        profile = self.profile(spec)
        check_provisioning(profile)
        attempt = spec.attempt
        upload_job(self.storage, spec, attempt, self._job_settings(spec, profile))
        job_value = job_pointer(spec.stage_run_id, attempt, self.storage)
        base = {
            "backend": self.name,
            "stage_run_id": spec.stage_run_id,
            "attempt": attempt,
            "profile": profile.name,
            "logs_dir": str(spec.logs_dir),
            "outputs_dir": str(spec.outputs_dir),
            "outputs": list(spec.outputs),
            "log_sync_interval": self._config.defaults.log_sync_interval,
            "launched_at": now_iso(),
        }
        if self.pool.serves(profile.name):
            handover = self.pool.hand_over(profile.name, spec.stage_run_id, attempt, job_value, spec.image)
            if handover is not None:
                row = handover.instance
                return {
                    **base,
                    "instance": row.name,
                    "zone": row.zone,
                    "spot": row.spot,
                    "pool": "warm",
                    "created": False,
                    "tries": [],
                    "handover_seconds": round(handover.waited_seconds, 3),
                }
        return {**base, **self._launch_cold(spec, profile, job_value)}

    def find(self, stage_run_id: str) -> Handle | None:
        """The VM running ``stage_run_id`` whose handle was never recorded, found by its labels."""
        if missing_gce_settings(self._config):
            return None
        labels = {"goldfish-project": label_value(self._project), "goldfish-run": label_value(stage_run_id)}
        zones = dict.fromkeys(
            [*self._config.gce.zones, *(z for p in all_profiles(self._config).values() for z in p.zones)]
        )
        for zone in zones:
            for info in self.api().list(zone, labels):
                job = json_object(info.metadata.get("goldfish-job", "").encode()) or {}
                if job.get("stage_run_id") != stage_run_id:
                    continue
                document = json_object(self.storage.read_bytes(RunPaths(stage_run_id).job)) or {}
                run_dir = ProjectPaths.of(self._settings.project_root, self._config).scratch / stage_run_id
                return {
                    "backend": self.name,
                    "stage_run_id": stage_run_id,
                    "attempt": int(job.get("attempt", 1)),
                    "profile": None,
                    "logs_dir": str(run_dir / "logs"),
                    "outputs_dir": str(run_dir / "outputs"),
                    "outputs": list(document.get("outputs", [])),
                    "log_sync_interval": self._config.defaults.log_sync_interval,
                    "launched_at": now_iso(),
                    "instance": info.name,
                    "zone": zone,
                    "spot": info.spot,
                    "pool": info.labels.get("goldfish-pool", "cold"),
                    "created": True,
                    "tries": [],
                }
        return None

    def status(self, handle: Handle) -> BackendStatus:
        """Exit code, preemption or failure object, then VM state and heartbeat age.

        A failed cloud call is not the stage's failure: the run stays running (the stage timeout
        still applies) until ``MAX_STATUS_ERRORS`` checks in a row have failed.
        """
        run_id = str(handle["stage_run_id"])
        interval = float(self._config.gce.poll_interval_seconds)
        last = self._checked.get(run_id)
        if last is not None and time.monotonic() - last < interval:
            return BackendStatus("running")
        self._checked[run_id] = time.monotonic()
        try:
            status = self._check(handle, RunPaths(run_id))
        except GoldfishError as exc:
            errors = self._errors[run_id] = self._errors.get(run_id, 0) + 1
            log.warning("checking %s failed (%d in a row): %s", run_id, errors, exc.message)
            if errors >= MAX_STATUS_ERRORS:
                detail = f"the VM could not be checked {errors} times in a row: {exc.message}"
                return BackendStatus("lost", detail=detail)
            return BackendStatus("running")
        self._errors.pop(run_id, None)
        return status

    def _check(self, handle: Handle, paths: RunPaths) -> BackendStatus:
        storage = self.storage
        done = ended(storage, handle, paths)
        if done is not None:
            return done
        info = self.api().get(str(handle["zone"]), str(handle["instance"]))
        if info is None or info.status in ("TERMINATED", "STOPPING", "STOPPED", "SUSPENDED"):
            done = ended(storage, handle, paths)  # it may have finished just before powering off
            return done or stopped_without_exit_code(info)
        mirror_logs(storage, handle, paths)
        stale = stale_heartbeat(storage, handle, paths)
        if stale is not None:
            return BackendStatus("lost", detail=stale)
        return BackendStatus("running")

    def logs(self, handle: Handle, stream: Literal["stdout", "stderr"], offset: int) -> tuple[str, int]:
        """Log text from the local mirror (refreshed by every status check)."""
        return read_log(Path(handle["logs_dir"]), stream, offset)

    def cancel(self, handle: Handle, grace_seconds: float = 5.0) -> None:
        """Delete the VM (a warm one leaves the pool): the server deletes any VM whose job it cancels."""
        self._checked.pop(str(handle["stage_run_id"]), None)
        if handle.get("pool") == "warm" and self.pool.discard(str(handle["instance"]), "run canceled"):
            return
        self._delete_vm(handle)

    def cleanup(self, handle: Handle) -> None:
        """A finished warm VM goes back to the pool idle; any other VM of the run is deleted."""
        run_id = str(handle["stage_run_id"])
        self._checked.pop(run_id, None)
        name = str(handle["instance"])
        finished = self.storage.exists(RunPaths(run_id).exit_code)
        if handle.get("pool") == "warm" and finished and self.pool.release(name, run_id):
            return
        if handle.get("pool") == "warm":
            self.pool.discard(name, f"run {run_id} ended without a clean finish")
            return
        self._delete_vm(handle)

    def _delete_vm(self, handle: Handle) -> None:
        """Delete the run's VM; a failure is logged (a cold VM powers itself off after its job anyway)."""
        try:
            self.api().delete(str(handle["zone"]), str(handle["instance"]), wait=False)
        except GoldfishError as exc:
            log.warning("could not delete VM %s: %s", handle.get("instance"), exc.message)

    # -- launch ----------------------------------------------------------------------------------
    def _job_settings(self, spec: RunSpec, profile: Profile) -> JobSettings:
        """What job.json says beyond the spec: the container's limits and user, the VM's checks."""
        docker = self._config.docker
        return JobSettings(
            image=str(spec.image),
            limits=Limits(
                memory=profile.container_memory,
                cpus=profile.container_cpus,
                pids=max(docker.pids_limit, VM_PIDS_LIMIT),
                network=docker.network,
                gpus=profile.gpu_count,
                shm_size=VM_SHM_SIZE,
            ),
            user=f"{CONTAINER_UID}:{CONTAINER_UID}",
            project_label=self._project,
            log_sync_interval=self._config.defaults.log_sync_interval,
            gpu_count=profile.gpu_count,
            outputs=tuple(spec.outputs),
            registry_login=registry_login_host(str(spec.image), self._config.gce.registry_login),
            gpu_wait_seconds=self._config.gpu_check.timeout_seconds,
            gpu_min_free_mb=self._config.gpu_check.min_free_memory_mb,
        )

    def _check_image(self, profile: Profile) -> None:
        """The profile's image family resolves (``images.getFromFamily``), checked once per family.

        Deep Learning VM families are renamed over time; a family that no longer exists would make
        every insert fail with a bare "not found".
        """
        gpu = bool(profile.accelerator) and profile.gpu_count > 0
        source = image_source(profile.image_family, gpu=gpu)
        if source in self._images_found:
            return
        try:
            self.api().image_from_family(*source)
        except GoldfishError as exc:
            if f"images/family/{source[1]}" not in exc.message:
                # Not GCE saying the family is missing (a network error, an endpoint without
                # images.getFromFamily): the insert itself will tell.
                log.warning("could not check image family %s/%s: %s", *source, exc.message)
                self._images_found.add(source)
                return
            raise ConfigError(
                f"Image family {source[0]}/{source[1]} of profile '{profile.name}' does not exist "
                f"(any more): {exc.message}",
                details={"profile": profile.name, "image_project": source[0], "image_family": source[1]},
                remedy=f"Set gce.profile_overrides.{profile.name}.image_family to a family that exists "
                f"(`gcloud compute images list --project={source[0]} --no-standard-images` lists them; "
                "for GPUs pick a Deep Learning VM family with CUDA).",
            ) from exc
        self._images_found.add(source)

    def _service_account(self) -> str | None:
        """The VM's account: gce.service_account, else the project's default Compute account.

        None only when the default cannot be looked up (``goldfish doctor`` reports why): the VM
        then has no account, which a VM reading a real bucket cannot do without.
        """
        configured = self._config.gce.service_account
        if configured:
            return configured
        try:
            return str(self.api().default_service_account())
        except GoldfishError as exc:
            log.warning(
                "no service account for the VM: the default one could not be looked up: %s", exc.message
            )
            return None

    def _launch_cold(self, spec: RunSpec, profile: Profile, job_value: str) -> dict[str, Any]:
        self._check_image(profile)
        account = self._service_account()
        name = instance_name()
        zones = list(profile.zones)
        warm = self.pool.serves(profile.name) and self.pool.register(
            name, zones[0], profile.name, spot=profile.spot, run_id=spec.stage_run_id, image=str(spec.image)
        )
        metadata = {
            "startup-script": startup_files().startup_script,
            "goldfish-agent": startup_files().agent,
            "goldfish-job": job_value,
        }
        if warm:
            metadata["goldfish-warm"] = self.pool.warm_metadata(name)
        labels = {
            "goldfish-project": label_value(self._project),
            "goldfish-run": label_value(spec.stage_run_id),
            "goldfish-pool": "warm" if warm else "cold",
        }

        def make_body(zone: str, spot: bool) -> InstanceBody:
            return body_from_profile(
                profile,
                zone=zone,
                spot=spot,
                name=name,
                metadata=metadata,
                labels=labels,
                service_account=account,
            )

        try:
            result = launch_cold(
                self.api(),
                zones,
                spot=profile.spot,
                on_demand_fallback=profile.on_demand_fallback
                and standard_model_offered(str(profile.machine_type)),
                make_body=make_body,
                avoid_zones=spec.avoid_zones,
            )
        except GoldfishError as exc:
            if warm:
                self.pool.launch_failed(name, exc.message)
            raise
        if warm:
            self.pool.launched(name, result.zone, result.spot)
        return {
            "instance": result.name,
            "zone": result.zone,
            "spot": result.spot,
            "pool": "warm" if warm else "cold",
            "created": result.created,
            "tries": [vars(item) for item in result.tries if item.category is not None],
        }
