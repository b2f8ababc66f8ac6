"""``python -m goldfish.io.runner ARGV...``: the stage's parent inside its process, container or VM.

The stage wrapper (``backends/spec.py``) starts the stage through this runner when the stage has
secrets or telemetry is on. The runner

* runs a ``-m MODULE`` stage that has no secrets in its own interpreter (``runpy``), with the
  telemetry sampler on a thread: one interpreter per stage, not two;
* otherwise starts the stage as a child and passes its stdout/stderr through a
  :class:`~goldfish.io.masking.Masker`, so a secret's value is stored as ``***`` (the log files are
  written by the wrapper's redirections, on every backend and on the VM before anything is
  uploaded), ignoring TERM/INT itself (the stage, in the same process group, gets them) so it keeps
  draining the stage's output until the stage exits; it exits with the stage's code (128 + N for a
  signal);
* samples telemetry while the stage runs (:mod:`goldfish.io.telemetry`);
* after a stage that exited 0, summarises its outputs in the same interpreter
  (:mod:`goldfish.io.stats`; the wrapper does that itself for a stage it starts without the runner).

Standard library only.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import threading
from typing import IO

from goldfish.io import stats
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


def run_in_process(module: str, args: list[str]) -> int:
    """Run ``module`` as ``__main__`` here, as ``python -m`` would; return its exit status.

    An exception other than ``SystemExit`` propagates, so the interpreter reports it (traceback on
    stderr, status 1) exactly as it does for a plain ``python -m``.
    """
    sampler = Sampler(os.getpid(), TelemetrySettings.from_environment())
    sampler.start()
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_status(exc.code)
    finally:
        sampler.stop()
    return 0


def _exit_status(code: object) -> int:
    """The status ``sys.exit(code)`` gives a process."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def summarise_outputs() -> None:
    """The SVS statistics of the stage's outputs; a failure here never fails the stage."""
    try:
        stats.main()
    except Exception as exc:  # any failure of the summary is reported, never raised
        print(f"goldfish: output statistics failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def run(argv: list[str]) -> int:
    """Run ``argv`` as the stage in a child process; return its exit code."""
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
    """Entry point: the stage's argv follows the module name (its first item is this interpreter)."""
    argv = sys.argv[1:]
    if len(argv) < 2:
        print("usage: python -m goldfish.io.runner ARGV...", file=sys.stderr)
        sys.exit(2)
    if argv[1] == "-m" and len(argv) >= 3 and not secret_values():
        code = run_in_process(argv[2], argv[3:])
    else:
        sys.stdout.flush()
        code = run(argv)
    if code == 0:
        summarise_outputs()
    sys.exit(code)


if __name__ == "__main__":
    main()
