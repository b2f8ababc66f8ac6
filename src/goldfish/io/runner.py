"""``python -m goldfish.io.runner ARGV...``: the stage's entry inside its process, container or VM.

The stage wrapper (``backends/spec.py``) starts a stage with secrets or telemetry (on by default)
as ``PYTHON -m goldfish.io.runner PYTHON -m MODULE ARGS...``. The runner

* runs a stage that has no secrets in its own interpreter, as ``python -m MODULE`` would
  (``runpy``: ``__main__``, ``sys.argv``, the exit status of ``sys.exit`` or of an uncaught
  exception, threads joined and exit handlers run before the process ends): one interpreter per
  stage;
* runs a stage with secrets (and any argv that is not ``PYTHON -m MODULE``) as a child whose
  stdout/stderr pass through a :class:`~goldfish.io.masking.Masker`, so a secret's value is stored
  as ``***`` (the log files are the wrapper's redirections, on every backend and on the VM before
  anything is uploaded). Then the runner ignores TERM/INT itself (the stage, in the same process
  group, gets them), keeps draining the stage's output until it exits, and exits with its code
  (128 + N for a signal);
* has the stage's telemetry sampled by a separate process, started only once the stage outlives
  the first interval (:class:`~goldfish.io.lazy_sampler.LazySampler`);
* after a stage that exited 0, summarises its outputs in this interpreter (the SVS statistics of
  :mod:`goldfish.io.stats`; the wrapper starts that step itself for a stage it runs without the
  runner); a failure there is reported on stderr and never fails the stage.

Standard library only; what only one path needs is imported on that path.
"""

from __future__ import annotations

import atexit
import os
import runpy
import signal
import sys
import threading
from typing import IO

from goldfish.io.lazy_sampler import LazySampler
from goldfish.io.masking import Masker, secret_values

DRAIN_SECONDS = 5.0  # after the stage exits: a child it left behind may hold the pipe open
CHUNK = 65536
INTERRUPTED = 128 + signal.SIGINT
# Frames of the runner and of runpy, left out of the traceback of a stage that raised.
_OWN_CODE = frozenset({__file__, runpy.run_module.__code__.co_filename})


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


def run(argv: list[str], values: list[str]) -> int:
    """Run ``argv`` as the stage in a child process, its output masked; return its exit code."""
    import subprocess  # noqa: PLC0415 - only this path starts the stage as a child

    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    piped = subprocess.PIPE if values else None
    child = subprocess.Popen(argv, stdout=piped, stderr=piped)
    sampler = LazySampler(child.pid)
    sampler.start()
    pumps = []
    if values:
        for source, fd in ((child.stdout, 1), (child.stderr, 2)):
            assert source is not None
            pump = threading.Thread(target=_pump, args=(source, fd, Masker(values)), daemon=True)
            pump.start()
            pumps.append(pump)
    code = child.wait()
    sampler.stop()
    for pump in pumps:
        pump.join(DRAIN_SECONDS)
    return code if code >= 0 else 128 - code


def run_in_process(module: str, args: list[str]) -> int:
    """Run ``module`` as ``__main__`` here, as ``python -m`` would; return its exit status.

    An uncaught exception is printed as the interpreter prints it (without the runner's frames)
    and gives status 1 (130 for KeyboardInterrupt).
    """
    sys.argv = [module, *args]  # runpy puts the module's file in sys.argv[0]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exit_status(exc.code)
    except BaseException as exc:
        traceback = exc.__traceback__
        while traceback is not None and traceback.tb_frame.f_code.co_filename in _OWN_CODE:
            traceback = traceback.tb_next
        sys.excepthook(type(exc), exc.with_traceback(traceback), traceback)
        return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def exit_status(code: object) -> int:
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
        from goldfish.io import stats  # noqa: PLC0415 - a stage that failed never needs it

        stats.main()
    except Exception as exc:
        print(f"goldfish: output statistics failed: {type(exc).__name__}: {exc}", file=sys.stderr)


class _Ending:
    """What happens once the in-process stage is over (an exit handler).

    Registered before the stage runs, so it runs after the stage's own exit handlers (they run
    last-in, first-out) and after its threads ended: the outputs are summarised as they are when
    a ``python -m`` process of the stage would have exited.
    """

    def __init__(self, sampler: LazySampler):
        self.sampler = sampler
        self.code = 1
        self.pid = os.getpid()

    def __call__(self) -> None:
        if os.getpid() != self.pid:  # a child the stage forked, exiting through sys.exit
            return
        self.sampler.stop()
        if self.code == 0:
            summarise_outputs()


def main() -> None:
    """Entry point: the stage's argv follows the module name (its first item is the interpreter)."""
    argv = sys.argv[1:]
    if not argv:
        print("usage: python -m goldfish.io.runner ARGV...", file=sys.stderr)
        sys.exit(2)
    values = secret_values()
    if values or len(argv) < 3 or argv[1] != "-m":
        sys.stdout.flush()
        code = run(argv, values)
        if code == 0:
            summarise_outputs()
        sys.stderr.flush()
        os._exit(code)
    times = os.times()
    ending = _Ending(LazySampler(os.getpid(), cpu_seconds=times.user + times.system))
    atexit.register(ending)
    ending.sampler.start()
    ending.code = run_in_process(argv[2], argv[3:])
    sys.exit(ending.code)


if __name__ == "__main__":
    main()
