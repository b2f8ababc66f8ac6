"""The agent's life on one VM: jobs from metadata, then power off (cold) or idle (warm)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from .errors import AgentFailure, JobRefused
from .job_run import JobRun
from .job_spec import (
    Job,
    JobPointer,
    WarmConfig,
    failure_uri,
    parse_job_pointer,
    parse_warm_config,
    validate_job,
)
from .layout import JOB_ROOT, is_under, iso_utc, job_root
from .metadata import DEFAULT_METADATA_HOST, JOB_KEY, METADATA_HOST_ENV, WARM_KEY, Metadata
from .storage import STORAGE_EMULATOR_ENV, Storage

FIRST_JOB_WAIT_SECONDS = 600  # a cold VM without a job waits this long, then powers off
JOB_WATCH_SECONDS = 60  # one metadata wait-for-change request at most

log = logging.getLogger("goldfish-agent")


def power_off() -> None:
    """``poweroff`` (found on PATH), else ``shutdown -h now``."""
    for argv in (["poweroff"], ["shutdown", "-h", "now"]):
        exe = shutil.which(argv[0])
        if exe is None:
            continue
        log.info("powering off: %s", " ".join(argv))
        try:
            done = subprocess.run([exe, *argv[1:]], check=False, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("%s failed: %s", argv[0], exc)
            continue
        if done.returncode == 0:
            return
        log.error("%s exited %d", argv[0], done.returncode)
    log.error("could not power off: neither poweroff nor shutdown worked")


# -- one job -----------------------------------------------------------------------------------


class Agent:
    """The agent's life on one VM: jobs from metadata, then power off (cold) or idle (warm)."""

    def __init__(
        self,
        metadata: Metadata,
        storage: Storage,
        *,
        root: str = JOB_ROOT,
        shut_down: Callable[[], None] = power_off,
    ) -> None:
        self.metadata = metadata
        self.storage = storage
        self.root = root
        self._shut_down = shut_down
        self.instance = "unknown"
        self.zone = "unknown"
        self.warm: WarmConfig | None = None
        self._done: set[tuple[str, int]] = set()
        self._last_dir: str | None = None

    def run(self) -> int:
        """Serve jobs until the VM should stop, then power off (not after a preemption)."""
        self._identify()
        value, etag = self.metadata.fetch(JOB_KEY)
        while True:
            if value is not None and self._is_new(value):
                if self._handle_safely(value) == "preempted":
                    log.info("preempted: exiting")
                    return 0
                if self.warm is None:
                    break
            found = self._wait_for_job(etag)
            if found is None:
                break
            value, etag = found
        if self.warm is not None:
            self._write_state("stopped", None, None)
        self._shut_down()
        return 0

    def _identify(self) -> None:
        try:
            self.instance = self.metadata.read("instance/name") or "unknown"
            self.zone = (self.metadata.read("instance/zone") or "unknown").rsplit("/", 1)[-1]
        except AgentFailure as exc:
            log.warning("could not read the instance name/zone: %s", exc.reason)
        try:
            self.warm = parse_warm_config(self.metadata.read(WARM_KEY))
        except JobRefused as exc:
            log.error("ignoring goldfish-warm (%s): running as a cold VM", exc.reason)
        log.info("instance %s in %s (%s)", self.instance, self.zone, "warm" if self.warm else "cold")

    def _is_new(self, value: str) -> bool:
        try:
            key = parse_job_pointer(value).key
        except JobRefused:
            return True  # _handle reports it
        if key in self._done:
            log.info("goldfish-job names %s attempt %d again: already run, ignored", *key)
            return False
        return True

    def _wait_for_job(self, etag: str) -> tuple[str, str] | None:
        """Wait for a new goldfish-job until the idle deadline (warm) or the first-job wait (cold)."""
        timeout = self.warm.idle_timeout_seconds if self.warm else FIRST_JOB_WAIT_SECONDS
        deadline = time.monotonic() + timeout
        if self.warm is not None:
            self._write_state("idle", None, time.time() + timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            started = time.monotonic()
            try:
                value, new_etag = self.metadata.watch(
                    JOB_KEY, etag, math.ceil(min(remaining, JOB_WATCH_SECONDS))
                )
            except AgentFailure as exc:
                log.warning("waiting for a job: %s", exc.reason)
                time.sleep(min(5.0, max(remaining, 0.0)))
                continue
            if new_etag != etag and value is not None and self._is_new(value):
                return value, new_etag
            if new_etag == etag and time.monotonic() - started < 1:
                time.sleep(1)
            etag = new_etag

    def _handle_safely(self, value: str) -> str:
        try:
            return self._handle(value)
        except Exception:
            log.exception("could not handle goldfish-job")
            return "error"

    def _handle(self, value: str) -> str:
        """Run the job a goldfish-job value names; the outcome (``refused`` when it is not run)."""
        try:
            pointer = parse_job_pointer(value)
        except JobRefused as exc:
            log.error("ignoring goldfish-job: %s", exc.reason)
            return "refused"
        self._done.add(pointer.key)
        try:
            raw = json.loads(self.storage.read_bytes(pointer.job_uri))
        except (AgentFailure, ValueError) as exc:
            log.error("cannot read job %s: %s", pointer.job_uri, getattr(exc, "reason", exc))
            return "unreadable"
        try:
            job = validate_job(raw, self.root)
            if (job.stage_run_id, job.attempt) != pointer.key:
                raise JobRefused("job.json names another stage run or attempt than goldfish-job")
        except JobRefused as exc:
            self._refuse(raw, pointer, exc.reason)
            return "refused"
        self._forget_previous(job.job_dir)
        return JobRun(self, job).run()

    def _refuse(self, raw: object, pointer: JobPointer, reason: str) -> None:
        log.error("refusing %s attempt %d: %s", pointer.stage_run_id, pointer.attempt, reason)
        uri = failure_uri(raw)
        if uri is None:
            return
        body = {
            "kind": "infra_error",
            "reason": f"job refused: {reason}",
            "attempt": pointer.attempt,
            "at": iso_utc(),
        }
        try:
            self.storage.write_json(uri, body)
        except AgentFailure as exc:
            log.error("could not write failure.json: %s", exc.reason)

    def _forget_previous(self, directory: str) -> None:
        """Remove the previous job's folder (all of it is in the bucket by now)."""
        previous, self._last_dir = self._last_dir, directory
        if previous and previous != directory and is_under(previous, self.root):
            shutil.rmtree(previous, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(previous))  # the stage run's folder, once it is empty

    def job_started(self, job: Job) -> None:
        """A job was accepted: a warm VM reports itself busy with it."""
        if self.warm is not None:
            self._write_state("busy", job.stage_run_id, None)

    def _write_state(self, state: str, run_id: str | None, idle_deadline: float | None) -> None:
        if self.warm is None or self.warm.state_uri is None:
            return
        body = {
            "state": state,
            "run_id": run_id,
            "at": iso_utc(),
            "idle_deadline": None if idle_deadline is None else iso_utc(idle_deadline),
        }
        try:
            self.storage.write_json(self.warm.state_uri, body)
            log.info("state %s", state)
        except AgentFailure as exc:
            log.error("could not write state.json: %s", exc.reason)


# -- entry point -------------------------------------------------------------------------------


def configure_logging() -> None:
    """Timestamped (UTC) lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ goldfish-agent %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main() -> int:
    """Run the agent; the process exit status."""
    configure_logging()
    metadata = Metadata(os.environ.get(METADATA_HOST_ENV) or DEFAULT_METADATA_HOST)
    storage = Storage(metadata, os.environ.get(STORAGE_EMULATOR_ENV) or None)
    agent = Agent(metadata, storage, root=job_root())
    try:
        return agent.run()
    except Exception:
        log.exception("the agent failed; powering off")
        power_off()
        return 1
