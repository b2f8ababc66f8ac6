"""The container runner: the job's ``docker run`` argv in the foreground, its timeout, its exit code."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable

from .docker_cli import docker_quiet
from .errors import Preempted, tail
from .files import append_note, read_exit_code
from .job_spec import Job

TIMEOUT_GRACE_SECONDS = 60  # past timeout_seconds: the stop file, then a kill after KILL_GRACE
KILL_GRACE_SECONDS = 30
WAIT_TICK_SECONDS = 0.5

log = logging.getLogger("goldfish-agent")


def run_container(
    job: Job, env: dict[str, str], preempted: Callable[[], bool], redact: Callable[[str], str]
) -> int:
    """Run the job's container to its end; the stage's exit code (else docker's).

    Args:
        job: The validated job.
        env: The environment of the ``docker run`` process (secret values included).
        preempted: Whether the preemption watcher has taken the job over (checked while waiting).
        redact: Masks secret values in a note written to the job's stderr log.

    Raises:
        Preempted: when the job was preempted while the container ran.
    """
    docker_quiet(["rm", "-f", job.container_name])
    cli_log = os.path.join(job.job_dir, "docker-run.log")
    log.info("starting container %s", job.container_name)
    with open(cli_log, "wb") as out:
        proc = subprocess.Popen(
            list(job.docker_run),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        returncode = _wait_container(job, proc, preempted)
    if preempted():
        raise Preempted()
    docker_quiet(["rm", "-f", job.container_name])  # exited containers would pile up
    code = read_exit_code(os.path.join(job.job_dir, "logs"))
    if code is None:
        code = returncode
        _note_docker_failure(job, returncode, cli_log, redact)
    log.info("container %s exited with %d", job.container_name, code)
    return code


def _wait_container(job: Job, proc: subprocess.Popen[bytes], preempted: Callable[[], bool]) -> int:
    timeout = job.timeout_seconds
    deadline = None if timeout is None else time.monotonic() + timeout + TIMEOUT_GRACE_SECONDS
    stop_sent: float | None = None
    killed = False
    while True:
        try:
            return proc.wait(timeout=WAIT_TICK_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if preempted() and not killed:
            docker_quiet(["kill", job.container_name])
            killed = True
        if deadline is not None and time.monotonic() > deadline and not killed:
            if stop_sent is None:
                log.warning("%s ran past its timeout: asking it to stop", job.stage_run_id)
                append_note(os.path.join(job.job_dir, "control", "stop"), "timeout\n")
                stop_sent = time.monotonic()
            elif time.monotonic() - stop_sent > KILL_GRACE_SECONDS:
                docker_quiet(["kill", job.container_name])
                killed = True


def _note_docker_failure(job: Job, returncode: int, cli_log: str, redact: Callable[[str], str]) -> None:
    try:
        with open(cli_log, "rb") as handle:
            said = tail(handle.read()[-4000:].decode("utf-8", "replace"))
    except OSError:
        said = ""
    note = redact(f"docker run exited {returncode} before the stage wrapper recorded an exit code: {said}")
    log.warning("%s", note)
    append_note(os.path.join(job.job_dir, "logs", "stderr.log"), f"[goldfish-agent] {note}\n")
