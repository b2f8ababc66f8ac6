"""The pieces every ``goldfish doctor`` cloud check is made of: the result shape, the fixes, the probe.

Each check is a dict ``{"name", "ok", "detail", "fix"}``; ``fix`` names the goldfish.yaml key,
command or IAM role that repairs a failure. Two optional flags refine ``ok``: ``warning`` (true
on a passing check that still deserves attention) and ``skipped`` (true on a check that could
not run because an earlier one failed). A :class:`Probe` runs one network check in a daemon
thread bounded by :data:`CHECK_TIMEOUT` seconds; every exception becomes a failed check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from goldfish.backends.gce import adaptor

Check = dict[str, Any]

CHECK_TIMEOUT = 10.0
"""Most seconds any one network check may take (credentials, bucket, Compute API)."""
RPC_TIMEOUT = 8.0
"""Seconds one Compute API request may take inside a check."""
INSTALL_FIX = adaptor.INSTALL_HINT
ADC_FIX = (
    "Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file."
)

SETTING_FIXES: dict[str, str] = {
    "gce.project_id": "Set gce.project_id in goldfish.yaml to your Google Cloud project ID "
    "(`gcloud config get-value project` prints the current one).",
    "gce.zones": "Set gce.zones in goldfish.yaml to the zones to try, in order, e.g. "
    "[us-central1-a, us-central1-b] (zones that offer your GPU type and where you have quota).",
    "gce.image_registry": "Set gce.image_registry in goldfish.yaml to HOST/PATH of a Docker repository, "
    "e.g. us-central1-docker.pkg.dev/PROJECT/goldfish (`gcloud artifacts repositories create goldfish "
    "--repository-format=docker --location=us-central1` creates one).",
    "storage.backend: gcs": "Set storage.backend: gcs in goldfish.yaml: VMs read inputs and write "
    "outputs, logs and exit codes through the bucket.",
    "storage.gcs.bucket": "Set storage.gcs.bucket (and optionally storage.gcs.prefix) in goldfish.yaml "
    "(`gcloud storage buckets create gs://NAME --location=REGION` creates a bucket).",
}


def check(
    name: str,
    ok: bool,
    detail: str,
    fix: str | None = None,
    *,
    warning: bool = False,
    skipped: bool = False,
) -> Check:
    """One check result (``warning``/``skipped`` only appear when true)."""
    check: Check = {"name": name, "ok": ok, "detail": detail, "fix": fix}
    if warning:
        check["warning"] = True
    if skipped:
        check["skipped"] = True
    return check


def skipped(name: str, why: str, fix: str) -> Check:
    """A check that could not run because an earlier one failed (``why``)."""
    return check(name, False, f"not checked: {why}", fix, skipped=True)


def short(error: BaseException) -> str:
    """An error's message on one line, at most 400 characters."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())[:400]


class Probe:
    """Runs ``call`` (which returns a check) in a daemon thread, started at once.

    A call still running after its deadline is left behind (daemon threads never delay the exit)
    and reported as a failed check; an exception it raises becomes a failed check too.
    """

    def __init__(self, name: str, call: Callable[[], Check], fix: str):
        self.name = name
        self.fix = fix
        self._call = call
        self._result: Check | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"goldfish-doctor-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._call()
        except Exception as error:
            self._result = check(self.name, False, f"{type(error).__name__}: {short(error)}", self.fix)

    def result(self) -> Check:
        """The check, waiting at most what is left of :data:`CHECK_TIMEOUT` since the start."""
        self._thread.join(max(0.0, CHECK_TIMEOUT - (time.monotonic() - self._started)))
        if self._thread.is_alive() or self._result is None:
            detail = f"no answer within {CHECK_TIMEOUT:g} s"
            return check(self.name, False, detail, f"Check the network connection. {self.fix}")
        return self._result
