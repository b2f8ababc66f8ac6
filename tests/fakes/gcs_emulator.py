"""pytest plugin: one ``gcp-storage-emulator`` process per session and a fresh bucket per test.

Use it by requesting ``gcs_bucket`` (it sets ``STORAGE_EMULATOR_HOST`` for the test, so any
``GcsStorage`` or Google client made during the test talks to the emulator with anonymous
credentials)::

    def test_something(gcs_bucket: GcsBucket) -> None:
        store = GcsStorage(gcs_bucket.name, "some/prefix")

``gcs_emulator`` (session scope) is the process itself: its URL and its request log.

The emulator speaks the JSON API that ``google-cloud-storage`` 3.x uses (multipart and resumable
uploads, prefix listings, ranged downloads) but does NOT enforce ``if_generation_match``
preconditions: never let a test rely on them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from goldfish.storage.gcs import GcsStorage
from goldfish.storage.gcs_adaptor import EMULATOR_ENV

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class GcsEmulator:
    """A running emulator: ``host`` is the ``STORAGE_EMULATOR_HOST`` value; ``log`` its request log."""

    host: str
    log: Path

    def requests_seen(self) -> str:
        """The emulator's log so far (one line per HTTP request it served)."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class GcsBucket:
    """A fresh, empty bucket in the emulator; ``STORAGE_EMULATOR_HOST`` is set to ``host``."""

    host: str
    name: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmulatorError(RuntimeError):
    """The emulator could not be started."""


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Poll (bounded) until the emulator accepts connections; raise with its log otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            what = f"exited with {process.returncode}" if process.returncode is not None else "is silent"
            output = log.read_text(encoding="utf-8", errors="replace")
            raise EmulatorError(f"gcp-storage-emulator {what} (port {port}); its log:\n{output}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def start_emulator(workdir: Path) -> Iterator[GcsEmulator]:
    """Run ``gcp-storage-emulator --in-memory`` on a free loopback port while the block runs.

    Raises:
        EmulatorError: when the executable is missing or the emulator does not come up.
    """
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    if not executable.exists():
        raise EmulatorError(f"{executable} is missing: install the dev extra (pip install -e '.[dev]').")
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "emulator.log"
    command = [str(executable), "start", "--host", _LOOPBACK, "--port", str(port), "--in-memory"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_until_serving(process, port, log)
        yield GcsEmulator(f"http://{_LOOPBACK}:{port}", log)
    finally:
        _stop(process)


def create_bucket(emulator: GcsEmulator, prefix: str = "goldfish-test") -> str:
    """Create a uniquely named bucket (``STORAGE_EMULATOR_HOST`` must point at ``emulator``)."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    GcsStorage(name).client.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """The emulator for the whole session."""
    try:
        with start_emulator(tmp_path_factory.mktemp("gcs-emulator")) as emulator:
            yield emulator
    except EmulatorError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def gcs_bucket(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsBucket:
    """A new uniquely named bucket; the test sees ``STORAGE_EMULATOR_HOST`` pointing at the emulator."""
    monkeypatch.setenv(EMULATOR_ENV, gcs_emulator.host)
    return GcsBucket(gcs_emulator.host, create_bucket(gcs_emulator))
