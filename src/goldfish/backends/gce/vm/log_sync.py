"""The job's log files, uploaded when they change (secret values masked)."""

from __future__ import annotations

import logging
import os
import threading

from .errors import UnsafeFile
from .files import mask_file, remove_path
from .job_spec import Job
from .storage import TEXT, Storage

LOG_FILES = (
    ("stdout.log", "stdout"),
    ("stderr.log", "stderr"),
    ("metrics.jsonl", "metrics"),
    ("heartbeat.json", "stage_heartbeat"),
    ("svs_stats.json", "svs_stats"),  # output statistics, written before the exit code
)

log = logging.getLogger("goldfish-agent")


class LogSync:
    """Uploads each of the job's log files whose size or mtime changed since its last upload.

    ``secret_values`` is the job's list, shared: values added to it later are masked too.
    """

    def __init__(self, storage: Storage, job: Job, secret_values: list[str]) -> None:
        self._storage = storage
        self._job = job
        self._secret_values = secret_values
        self._lock = threading.Lock()
        self._synced: dict[str, tuple[int, int]] = {}

    def sync(self) -> None:
        """Upload the changed log files (waits for a sync in progress)."""
        with self._lock:
            self._upload_changed()

    def sync_within(self, wait_seconds: float) -> bool:
        """Like :meth:`sync`, unless a sync in progress holds on past ``wait_seconds``; whether it ran."""
        if not self._lock.acquire(timeout=wait_seconds):
            return False
        try:
            self._upload_changed()
        finally:
            self._lock.release()
        return True

    def _upload_changed(self) -> None:
        for filename, key in LOG_FILES:
            uri = self._job.logs.get(key)
            path = os.path.join(self._job.job_dir, "logs", filename)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            signature = (info.st_size, info.st_mtime_ns)
            if uri is None or self._synced.get(filename) == signature:
                continue
            try:
                self._upload_masked(uri, path)
            except UnsafeFile as exc:
                log.warning("not syncing %s: %s", filename, exc.reason)
            self._synced[filename] = signature

    def _upload_masked(self, uri: str, path: str) -> None:
        """Upload a log file; with secrets, a copy with their values replaced by ``***``.

        The in-stage runner already masks what the stage prints; this also covers lines a stage
        wrote into its log files itself.
        """
        if not self._secret_values:
            self._storage.upload_file(uri, path, TEXT)
            return
        masked = os.path.join(self._job.job_dir, f".upload-{os.path.basename(path)}")
        try:
            mask_file(path, masked, self._secret_values)
            self._storage.upload_file(uri, masked, TEXT)
        finally:
            remove_path(masked)
