"""A throwaway Docker registry on loopback: Debian's ``docker-registry serve CONFIG``.

Images travel as on GCE: the server pushes the stage image to ``<address>/path:tag`` and the
simulated VM pulls it. Docker allows plain HTTP for registries on ``127.0.0.0/8``, so no TLS and
no daemon configuration is needed.

Like a private Artifact Registry repository, it refuses anonymous pushes and pulls: a client
logs in as ``oauth2accesstoken`` with an access token as the password (Artifact Registry docs,
"Configure authentication to Artifact Registry for Docker", access token method:
https://cloud.google.com/artifact-registry/docs/docker/authentication). The one token it
accepts is :data:`~tests.fakes.fake_metadata.FAKE_ACCESS_TOKEN`, which the fake metadata server
hands out to instances that have a service account. A VM's docker starts with no credentials,
so an agent that pulls without logging in fails as it would on GCE.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.fakes.fake_metadata import FAKE_ACCESS_TOKEN

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 15.0

_CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: goldfish-simulator
    path: {htpasswd}
"""
REGISTRY_USER = "oauth2accesstoken"
# bcrypt (cost 4) of FAKE_ACCESS_TOKEN, the only password the registry accepts.
_HTPASSWD = f"{REGISTRY_USER}:$2b$04$N9wjPpC2ASmN2OQ4d1bT8OiIo8IqJb2JBwYhJvJWarX50O1YNm7dC\n"


def registry_binary() -> str | None:
    """The ``docker-registry`` executable, or None when it is not installed."""
    return shutil.which(REGISTRY_BINARY) or (
        "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) else None
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRegistry:
    """``docker-registry`` serving from a temporary folder on ``127.0.0.1:<free port>``."""

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="goldfish-registry-"))
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the registry host for image references (``ADDRESS/name:tag``)."""
        if self._proc is None:
            raise RuntimeError("LocalRegistry is not started")
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalRegistry:
        """Start the registry and wait (bounded) until ``GET /v2/`` answers; retries a taken port."""
        binary = registry_binary()
        if binary is None:
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        last_error = ""
        for _attempt in range(3):
            self.port = _free_port()
            config = self.root / "config.yml"
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(_HTPASSWD)
            config.write_text(_CONFIG.format(root=self.root / "data", port=self.port, htpasswd=htpasswd))
            log = (self.root / "registry.log").open("ab")
            with log:
                self._proc = subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self
            last_error = self.log()[-2000:]
            self._terminate()
        raise RuntimeError(f"docker-registry did not start: {last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2) as response:
                    if response.status == 200:
                        return True
            except urllib.error.HTTPError as err:
                if err.code == 401:  # up, and asking for credentials
                    return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def write_docker_config(self, folder: Path) -> Path:
        """A docker client config in ``folder`` logged in to this registry (what the server's user has).

        Point ``DOCKER_CONFIG`` at the folder for pushes; a simulated VM never sees it.
        """
        folder.mkdir(parents=True, exist_ok=True)
        secret = base64.b64encode(f"{REGISTRY_USER}:{FAKE_ACCESS_TOKEN}".encode()).decode()
        (folder / "config.json").write_text(json.dumps({"auths": {self.address: {"auth": secret}}}))
        return folder

    def log(self) -> str:
        """The registry's own log (for failing-test messages)."""
        try:
            return (self.root / "registry.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop the registry and remove its storage when it made the folder itself."""
        self._terminate()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
