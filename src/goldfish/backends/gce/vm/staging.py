"""A job's folder on the VM: its subfolders, the code bundle and the inputs, staged from the bucket."""

from __future__ import annotations

import logging
import os

from .files import relative_object_path, remove_path, safe_extract
from .job_spec import Job
from .layout import iso_utc
from .storage import Storage, parse_gs_uri

JOB_SUBDIRS = ("code", "config", "outputs", "logs", "control", "work")  # recreated per job; inputs kept
WRITABLE_SUBDIRS = ("outputs", "logs", "work")  # the container's non-root user writes here

log = logging.getLogger("goldfish-agent")


def prepare_dirs(job: Job) -> None:
    """Create the job folder and its subfolders (all but ``inputs`` fresh for this attempt)."""
    os.makedirs(job.job_dir, mode=0o755, exist_ok=True)
    for name in (*JOB_SUBDIRS, "inputs"):
        folder = os.path.join(job.job_dir, name)
        if name != "inputs":
            remove_path(folder)
        os.makedirs(folder, mode=0o755, exist_ok=True)
        os.chmod(folder, 0o777 if name in WRITABLE_SUBDIRS else 0o755)


def stage_bundle(storage: Storage, job: Job) -> None:
    """Download the job's bundle (if any) and extract it into the job folder, every member checked."""
    if job.bundle_uri is None:
        return
    archive = os.path.join(job.job_dir, "bundle.tar.gz")
    storage.download_to(job.bundle_uri, archive)
    count = safe_extract(archive, job.job_dir)
    os.unlink(archive)
    log.info("bundle extracted (%d files)", count)


def stage_inputs(storage: Storage, job: Job) -> None:
    """Stage each input into ``inputs/<name>`` (through ``.partial-<name>``, then a completion marker).

    An input a previous attempt on this VM staged completely is kept.
    """
    for spec in job.inputs:
        folder = os.path.join(job.job_dir, "inputs")
        final = os.path.join(folder, spec.name)
        marker = os.path.join(folder, f".{spec.name}.complete")
        if os.path.exists(marker) and os.path.lexists(final):
            log.info("input %s already staged", spec.name)
            continue
        partial = os.path.join(folder, f".partial-{spec.name}")
        for stale in (partial, final, marker):
            remove_path(stale)
        if spec.kind == "file":  # the layout local backends give a file input: <name>/<file>
            os.makedirs(partial, mode=0o755)
            basename = parse_gs_uri(spec.uri)[1].rsplit("/", 1)[-1]
            storage.download_to(spec.uri, os.path.join(partial, basename))
        else:
            _download_prefix(storage, spec.uri, partial)
        os.rename(partial, final)
        with open(marker, "w", encoding="utf-8") as done:
            done.write(iso_utc())
        log.info("input %s staged", spec.name)


def _download_prefix(storage: Storage, uri: str, folder: str) -> None:
    bucket, prefix = parse_gs_uri(uri)
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    os.makedirs(folder, mode=0o755)
    for name in storage.list_names(f"gs://{bucket}/{prefix}"):
        relative = relative_object_path(name, prefix)
        if not relative:
            continue
        target = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        storage.download_to(f"gs://{bucket}/{name}", target)
