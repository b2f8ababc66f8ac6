"""One accepted job on the VM, from ``ack.json`` to ``exit_code.txt`` (or failure, or preemption)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from .container import run_container
from .docker_cli import docker_pull, docker_quiet, registry_login
from .errors import AgentFailure, Preempted
from .files import output_files
from .gpus import GpuTelemetry, wait_for_gpus
from .job_spec import Job, parse_secrets
from .layout import iso_utc
from .log_sync import LogSync
from .metadata import PREEMPTED_KEY, Metadata, service_account_token
from .staging import prepare_dirs, stage_bundle, stage_inputs
from .storage import TEXT, Storage

PREEMPT_WATCH_SECONDS = 30
PREEMPT_FLUSH_WAIT_SECONDS = 120
PREEMPT_SYNC_WAIT_SECONDS = 10  # a preempted VM is switched off about 30 s after the notice
THREAD_JOIN_SECONDS = 120
MAX_REASON = 2000

log = logging.getLogger("goldfish-agent")


class Host(Protocol):
    """What a job needs of the agent running it."""

    metadata: Metadata
    storage: Storage
    instance: str
    zone: str

    def job_started(self, job: Job) -> None:
        """The job was accepted (``ack.json`` written)."""


class JobRun:
    """One accepted job, from ``ack.json`` to ``exit_code.txt`` (or failure/preemption)."""

    def __init__(self, agent: Host, job: Job) -> None:
        self.agent = agent
        self.job = job
        self.storage = agent.storage
        self.phase = "accepted"
        self._outcome: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._preempt_done = threading.Event()
        self._secret_values: list[str] = []
        self._logs = LogSync(agent.storage, job, self._secret_values)
        self._threads: list[threading.Thread] = []

    def path(self, *parts: str) -> str:
        """A path inside the job folder."""
        return os.path.join(self.job.job_dir, *parts)

    # lifecycle
    def run(self) -> str:
        """Do the job; ``exited``, ``failed`` or ``preempted``. Never raises."""
        try:
            self._accept()
            return self._execute()
        except Preempted:
            return self._await_preemption()
        except AgentFailure as exc:
            return self._fail(exc.reason)
        except Exception as exc:
            log.exception("unexpected error in %s", self.job.stage_run_id)
            return self._fail(f"agent error: {type(exc).__name__}: {exc}")
        finally:
            self._stop_threads()

    def _accept(self) -> None:
        job = self.job
        ack = {
            "instance": self.agent.instance,
            "zone": self.agent.zone,
            "attempt": job.attempt,
            "at": iso_utc(),
        }
        self.storage.write_json(job.logs["ack"], ack)
        log.info("accepted %s attempt %d (image %s)", job.stage_run_id, job.attempt, job.image)
        self.agent.job_started(job)
        prepare_dirs(job)
        self._start_threads()

    def _execute(self) -> str:
        self._set_phase("staging")
        stage_bundle(self.storage, self.job)
        stage_inputs(self.storage, self.job)
        env = self._container_env()
        if self.job.gpu_count > 0:
            self._set_phase("waiting_for_gpus")
            wait_for_gpus(self.job.gpu_count, self.job.gpu_wait_seconds, self.job.gpu_min_free_mb)
        self._set_phase("pulling")
        docker_pull(self.job.image, self._registry_env())
        self._set_phase("running")
        self._start_gpu_telemetry()
        code = run_container(self.job, env, lambda: self._outcome == "preempted", self._redact)
        return self._finish(code)

    def _start_gpu_telemetry(self) -> None:
        """GPU samples come from the VM (the container sees its GPUs only through the runtime)."""
        job = self.job
        if job.gpu_count <= 0 or job.telemetry_interval <= 0:
            return
        sampler = GpuTelemetry(
            self.path("logs", "metrics.jsonl"),
            job.gpu_count,
            job.telemetry_interval,
            job.telemetry_max_points,
            self._stop,
        )
        thread = threading.Thread(target=sampler.run, name=f"telemetry-{job.stage_run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            if self._outcome == "preempted":
                raise Preempted()
            self.phase = phase

    def _claim(self, outcome: str) -> bool:
        """Decide the job's outcome once; a preemption can only claim an undecided job."""
        with self._lock:
            if self._outcome == "preempted" or (outcome == "preempted" and self._outcome is not None):
                return False
            self._outcome = outcome
            return True

    def _redact(self, text: str) -> str:
        for value in self._secret_values:
            if value:
                text = text.replace(value, "***")
        return text

    # secrets and the registry
    def _container_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.job.secrets_uri is not None:
            secrets = parse_secrets(self.storage.read_bytes(self.job.secrets_uri))
            self._secret_values[:] = sorted(secrets.values(), key=len, reverse=True)
            env.update(secrets)
            log.info("secrets loaded: %s", ", ".join(sorted(secrets)) or "none")
        return env

    def _registry_env(self) -> dict[str, str] | None:
        """The environment ``docker pull`` needs: a login to the job's registry when it asks for one."""
        host = self.job.registry_login
        if host is None:
            return None
        folder = self.path("docker-config")  # not mounted into the container
        os.makedirs(folder, mode=0o700, exist_ok=True)
        env = {**os.environ, "DOCKER_CONFIG": folder}
        token, _lifetime = service_account_token(self.agent.metadata)
        self._secret_values.append(token)
        registry_login(host, token, env)
        return env

    # results
    def _finish(self, code: int) -> str:
        if code != 0 and self._preemption_announced():
            self._on_preempted()  # the shutdown stopped docker before the watcher saw the notice
        if not self._claim("exited"):
            raise Preempted()
        self._set_phase_quietly("uploading")
        self._upload_outputs()  # the heartbeat goes on meanwhile: outputs can be large
        self._stop_threads()  # nothing of this job may be written after exit_code.txt
        self.sync_logs()
        self.storage.write_bytes(self.job.logs["exit_code"], str(code).encode("ascii"), TEXT)
        log.info("%s attempt %d done: exit code %d", self.job.stage_run_id, self.job.attempt, code)
        return "exited"

    def _preemption_announced(self) -> bool:
        try:
            value = self.agent.metadata.read(PREEMPTED_KEY)
        except AgentFailure:
            return False
        return (value or "").strip().upper() == "TRUE"

    def _set_phase_quietly(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def _upload_outputs(self) -> None:
        for signal in self.job.outputs:
            path = self.path("outputs", signal)
            if not os.path.lexists(path):
                log.warning("declared output %s was not written", signal)
                continue
            files = output_files(path)
            for relative, full in files:
                self.storage.upload_file(f"{self.job.outputs_uri}{signal}/{relative}", full)
            log.info("output %s uploaded (%d files)", signal, len(files))

    def _fail(self, reason: str) -> str:
        if not self._claim("failed"):
            return self._await_preemption()
        self._stop_threads()
        reason = self._redact(reason)[:MAX_REASON]
        log.error("%s attempt %d failed: %s", self.job.stage_run_id, self.job.attempt, reason)
        body = {"kind": "infra_error", "reason": reason, "attempt": self.job.attempt, "at": iso_utc()}
        try:
            self.sync_logs()
            self.storage.write_json(self.job.logs["failure"], body)
        except Exception as exc:
            log.error("could not report the failure: %s", exc)
        return "failed"

    def _await_preemption(self) -> str:
        self._preempt_done.wait(PREEMPT_FLUSH_WAIT_SECONDS)
        return "preempted"

    # background threads
    def _start_threads(self) -> None:
        threads = ((self._beat_loop, "beat"), (self._sync_loop, "sync"), (self._watch_preemption, "preempt"))
        for target, name in threads:
            thread = threading.Thread(target=target, name=f"{name}-{self.job.stage_run_id}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _stop_threads(self) -> None:
        """Stop the sync loop and the watcher (the watcher may linger in a request; it acts no more)."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread() and thread.name.startswith(("sync-", "beat-")):
                thread.join(THREAD_JOIN_SECONDS)

    def _beat_loop(self) -> None:
        """The heartbeat, on its own thread: a long log upload never delays it."""
        while True:
            try:
                self.storage.write_json(
                    self.job.logs["heartbeat"],
                    {"at": iso_utc(), "state": self.phase, "attempt": self.job.attempt},
                )
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
            if self._stop.wait(self.job.log_sync_interval):
                return

    def _sync_loop(self) -> None:
        while True:
            try:
                self.sync_logs()
            except Exception as exc:
                log.warning("log sync failed: %s", exc)
            if self._stop.wait(self.job.log_sync_interval):
                return

    def sync_logs(self) -> None:
        """Upload each log file that changed (size or mtime) since its last upload."""
        self._logs.sync()

    def _watch_preemption(self) -> None:
        etag: str | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if etag is None:
                    value, new_etag = self.agent.metadata.fetch(PREEMPTED_KEY)
                else:
                    value, new_etag = self.agent.metadata.watch(PREEMPTED_KEY, etag, PREEMPT_WATCH_SECONDS)
            except AgentFailure as exc:
                log.warning("preemption watch: %s", exc.reason)
                self._stop.wait(5)
                continue
            if (value or "").strip().upper() == "TRUE":
                self._on_preempted()
                return
            if new_etag == etag and time.monotonic() - started < 1:
                self._stop.wait(1)
            etag = new_etag

    def _on_preempted(self) -> None:
        if self._stop.is_set() or not self._claim("preempted"):
            return
        job = self.job
        log.warning("preemption notice: stopping %s attempt %d", job.stage_run_id, job.attempt)
        # About 30 s remain before the VM is switched off: the marker first, so the server retries
        # the stage whatever happens next; then the container; then, bounded, the logs.
        try:
            self.storage.write_json(job.logs["preempted"], {"at": iso_utc(), "attempt": job.attempt})
        except Exception as exc:
            log.error("could not write preempted.json: %s", exc)
        docker_quiet(["kill", job.container_name], timeout=10)
        self._stop.set()
        try:
            self._logs.sync_within(PREEMPT_SYNC_WAIT_SECONDS)
        except Exception as exc:
            log.error("final log sync failed: %s", exc)
        self._preempt_done.set()
