"""``python -m goldfish.io.runner ARGV...``: the stage's parent inside its process, container or VM.

The stage wrapper (``backends/spec.py``) starts the stage through this runner when the stage has
secrets or telemetry is on. The runner

* passes the stage's stdout/stderr through a :class:`~goldfish.io.masking.Masker`, so a secret's
  value is stored as ``***`` (the log files are written by the wrapper's redirections, on every
  backend and on the VM before anything is uploaded);
* samples telemetry while the stage runs (:mod:`goldfish.io.telemetry`);
* ignores TERM/INT itself (the stage, in the same process group, gets them) so it keeps draining
  the stage's output until the stage exits, and exits with the stage's code (128 + N for a signal).

Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO

from goldfish.io.masking import Masker, secret_values
from goldfish.io.telemetry import Sampler, TelemetrySettings

DRAIN_SECONDS = 5.0  # after the stage exits: a child it left behind may hold the pipe open
CHUNK = 65536


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _pump(source: IO[bytes], fd: int, masker: Masker) -> None:
    """Copy ``source`` to ``fd`` masked, until end of stream."""
    try:
        while True:
            data = os.read(source.fileno(), CHUNK)
            if not data:
                break
            _write_all(fd, masker.feed(data))
        _write_all(fd, masker.finish())
    except OSError:
        return


def _ignore(signum: int, frame: object) -> None:
    """A handler (not SIG_IGN): exec resets it, so the stage itself gets default signal handling."""


def run(argv: list[str]) -> int:
    """Run ``argv`` as the stage; return its exit code."""
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    values = secret_values()
    piped = subprocess.PIPE if values else None
    child = subprocess.Popen(argv, stdout=piped, stderr=piped)
    pumps = []
    if values:
        for source, fd in ((child.stdout, 1), (child.stderr, 2)):
            assert source is not None
            pump = threading.Thread(target=_pump, args=(source, fd, Masker(values)), daemon=True)
            pump.start()
            pumps.append(pump)
    sampler = Sampler(child.pid, TelemetrySettings.from_environment())
    sampler.start()
    code = child.wait()
    sampler.stop()
    for pump in pumps:
        pump.join(DRAIN_SECONDS)
    return code if code >= 0 else 128 - code


def main() -> None:
    """Entry point: the stage's argv follows the module name."""
    if len(sys.argv) < 2:
        print("usage: python -m goldfish.io.runner ARGV...", file=sys.stderr)
        sys.exit(2)
    sys.stdout.flush()
    os._exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
