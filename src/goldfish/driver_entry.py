"""The detached driver process: ``python -m goldfish.driver_entry --project ROOT --pipeline-run ID``.

An entry point above the composition root: it opens the project's ``ServerContext`` and drives
one pipeline run with ``goldfish.runs.driver.PipelineDriver``. ``runs.driver.spawn_driver``
starts it as a new interpreter; ``goldfish run`` forks a :class:`DriverFork` instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from goldfish.context import ServerContext
from goldfish.runs.driver import PipelineDriver

log = logging.getLogger("goldfish.driver")


class DriverFork:
    """A forked process standing by to become the driver of one pipeline run (``goldfish run``).

    Forked before this process opens the project's database (SQLite state must never cross a
    fork), after the driver's modules are imported: when :meth:`start` hands it a run, it drives
    at once, with no interpreter start and no imports (the largest fixed cost of a short run).
    It runs detached (its own session, stdio on the driver log, double fork: nobody waits for
    it) and leaves with ``os._exit``. Unused, it exits when :meth:`close` closes its pipe (or
    this process ends). Only for a process with a single thread: a fork copies no other thread.
    """

    def __init__(self, project_root: Path, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        read_end, self._pipe = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(self._pipe)
                code = _stand_by(read_end, project_root, log_dir)
            finally:
                os._exit(code)
        os.close(read_end)
        self._used = False

    @property
    def available(self) -> bool:
        """True until a run was handed over or the fork was closed."""
        return not self._used

    def start(self, pipeline_run_id: str) -> None:
        """Hand ``pipeline_run_id`` to the standing-by process: it becomes its detached driver."""
        self._used = True
        try:
            os.write(self._pipe, pipeline_run_id.encode())
        finally:
            self._finish()

    def close(self) -> None:
        """Let an unused fork go."""
        if not self._used:
            self._used = True
            self._finish()

    def _finish(self) -> None:
        os.close(self._pipe)
        os.waitpid(self.pid, 0)  # it exits at once (its driver is a grandchild): no zombie left


def _stand_by(pipe: int, project_root: Path, log_dir: Path) -> int:
    """In the fork: wait for a run id; with one, fork the detached driver and return."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # never hold the caller's stdout open (a CI job reads it to the end)
        os.dup2(null, fd)
    chunks = []
    while chunk := os.read(pipe, 256):
        chunks.append(chunk)
    run_id = b"".join(chunks).decode()
    if not run_id:
        return 0
    os.setsid()
    if os.fork() != 0:
        return 0
    log_file = os.open(log_dir / f"driver-{run_id}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_file, 1)
    os.dup2(log_file, 2)
    os.chdir(project_root)
    return main(["--project", str(project_root), "--pipeline-run", run_id])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the detached driver."""
    parser = argparse.ArgumentParser(prog="goldfish-driver")
    parser.add_argument("--project", required=True)
    parser.add_argument("--pipeline-run", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    context = ServerContext.open(Path(args.project))
    try:
        PipelineDriver(context.driver_deps(), args.pipeline_run).drive()
    except Exception:
        log.exception("driver of %s failed", args.pipeline_run)
        return 1
    finally:
        context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
