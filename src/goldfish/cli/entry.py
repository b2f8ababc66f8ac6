"""The process entry of the ``goldfish`` command: the console script and ``python -m goldfish``.

:func:`goldfish.cli.app.main` returns an exit code (tests call it in-process); this runs it as a
whole process and ends that process promptly once the command is done.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

from goldfish.cli.app import main

# What a shell reports for a writer whose reader went away (128 + SIGPIPE).
PIPE_CLOSED = 141


def run() -> NoReturn:
    """Run the command in ``sys.argv`` and exit with its code."""
    try:
        code = main()
    except BrokenPipeError:
        # The reader of our output left early (`goldfish call ... | head`): stop as a piped command does.
        code = PIPE_CLOSED
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    """Exit with ``code``: exit handlers run and output is flushed, interpreter teardown is skipped.

    By then the command has closed what it opened (database, driver fork, log files via logging's
    exit handler), and freeing every loaded module and object one by one only costs time: about
    30 ms after ``goldfish run`` (``bench/vs_dvc.py``). While another thread still runs, the exit
    is the normal one, which waits for it (daemon threads are not waited for either way).
    """
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed (or no) stream
            stream.flush()
    os._exit(code)
