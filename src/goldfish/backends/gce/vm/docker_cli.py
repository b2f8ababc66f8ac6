"""The ``docker`` command line: run one command, log in to a registry, pull an image."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping

from .errors import AgentFailure, tail

REGISTRY_USER = "oauth2accesstoken"  # Artifact Registry: the token is the password of this user
PULL_RETRY_DELAYS = (5.0, 15.0)
PULL_TIMEOUT_SECONDS = 1800

log = logging.getLogger("goldfish-agent")


def docker(
    args: list[str], timeout: float, *, env: Mapping[str, str] | None = None, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker ARGS...`` (an argv list), output captured; ``stdin_text`` is fed to its input."""
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin_text,
        stdin=None if stdin_text is not None else subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )


def docker_quiet(args: list[str], timeout: float = 60) -> None:
    """``docker ARGS...`` whose failure does not matter (removing or killing a container)."""
    try:
        docker(args, timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("docker %s: %s", args[0], exc)


def registry_login(host: str, token: str, env: Mapping[str, str]) -> None:
    """``docker login HOST`` as ``oauth2accesstoken`` with the VM's token (given on stdin, never argv).

    The login lands in ``env["DOCKER_CONFIG"]``, the job's own folder: a fresh token per job.

    Raises:
        AgentFailure: with what docker said.
    """
    try:
        done = docker(
            ["login", "--username", REGISTRY_USER, "--password-stdin", host], 120, env=env, stdin_text=token
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentFailure(f"docker login {host} failed: {exc}") from exc
    if done.returncode != 0:
        said = tail(done.stderr or done.stdout).replace(token, "***")
        raise AgentFailure(f"docker login {host} failed: {said}")
    log.info("logged in to %s", host)


def docker_pull(image: str, env: Mapping[str, str] | None = None) -> None:
    """Pull ``image``, retrying a bounded number of times.

    Raises:
        AgentFailure: with what docker said when every try failed.
    """
    said = ""
    for delay in (*PULL_RETRY_DELAYS, None):
        try:
            done = docker(["pull", image], PULL_TIMEOUT_SECONDS, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = str(exc)
        else:
            if done.returncode == 0:
                log.info("pulled %s", image)
                return
            said = tail(done.stderr or done.stdout)
        if delay is None:
            break
        log.warning("docker pull %s failed (%s); retrying in %.0fs", image, said, delay)
        time.sleep(delay)
    raise AgentFailure(f"docker pull {image} failed: {said}")
