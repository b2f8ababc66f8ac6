"""Following a pipeline run until it ends: ``run(wait=true)``, ``goldfish run --wait`` and the benchmarks.

A change is noticed as soon as it is committed (SQLite's ``data_version``, read every few
milliseconds by :meth:`Database.wait_for_change`), by whichever process commits it; the picture
is re-read only then, or at the latest every ``interval`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from goldfish.db.database import Database
from goldfish.runs.models import RunSubmission

DRIVER_CHECK_SECONDS = 30.0


class RunWatcher:
    """Yields successive pictures of a pipeline run while it advances.

    Args:
        db: the project database (its ``data_version`` says when to look again).
        picture: ``RunService.submission``: the current picture of a pipeline run.
        ensure_driver: starts a driver for the run unless a live one holds it.
    """

    def __init__(
        self,
        db: Database,
        picture: Callable[[str, bool], RunSubmission],
        ensure_driver: Callable[[str], None],
    ):
        self._db = db
        self._picture = picture
        self._ensure_driver = ensure_driver

    def follow(self, submission: RunSubmission, timeout: float, interval: float) -> Iterator[RunSubmission]:
        """Pictures of ``submission``'s run until it is finished or ``timeout`` seconds pass.

        The first picture is read at once; each next one as soon as the database changes, at the
        latest ``interval`` seconds after the previous one. The last picture yielded is the run as
        it ended (``finished``) or as it stood when the time ran out. Every
        :data:`DRIVER_CHECK_SECONDS` it makes sure a driver holds the run (one is started if the
        previous one died), as any server process would. A dry run (no pipeline run) is yielded
        as it is.
        """
        run_id = submission.pipeline_run_id
        if run_id is None:
            yield submission
            return
        start = time.monotonic()
        deadline = start + timeout
        driver_checked = start
        seen = self._db.data_version()  # read before the picture, so no change goes unnoticed
        while True:
            current = self._picture(run_id, submission.version_created)
            yield current
            left = deadline - time.monotonic()
            if current.finished or left <= 0:
                return
            seen = self._db.wait_for_change(seen, min(interval, left))
            if time.monotonic() - driver_checked > DRIVER_CHECK_SECONDS:
                self._ensure_driver(run_id)
                driver_checked = time.monotonic()
