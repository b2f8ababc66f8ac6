"""One attempt's files into the bucket before any VM is told: bundle, inputs, secrets, job.json."""

from __future__ import annotations

import json

from goldfish.backends.gce.jobs import JobInput, JobSettings, VmJob, build_job, bundle
from goldfish.backends.spec import RunSpec
from goldfish.errors import InputUnreachableError
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage


def upload_job(storage: Storage, spec: RunSpec, attempt: int, settings: JobSettings) -> VmJob:
    """Write the bundle, the inputs that are local, ``secrets.json`` (if any) and ``job.json`` (last).

    A retry first removes the objects an earlier attempt left that would speak for this one.
    """
    paths = RunPaths(spec.stage_run_id)
    storage.write_bytes(paths.bundle, bundle(spec))
    inputs = [stage_input(storage, spec, name, uri) for name, uri in sorted(spec.input_uris.items())]
    job = build_job(spec, attempt, inputs, settings, storage)
    if job.secrets:
        storage.write_bytes(paths.secrets, json.dumps(job.secrets).encode())
    if attempt > 1:  # an earlier attempt's objects must not speak for this one
        for key in (paths.exit_code, paths.preempted, paths.failure, paths.ack):
            storage.delete(key)
    storage.write_bytes(paths.job, json.dumps(job.document, indent=1).encode())
    return job


def stage_input(storage: Storage, spec: RunSpec, name: str, uri: str) -> JobInput:
    """A ``gs://`` input as it is; a local one uploaded under the run's own keys first.

    Raises:
        GoldfishError: when the input is neither in Cloud Storage nor readable here.
    """
    if uri.startswith("gs://"):
        in_store = storage.key_of(uri.rstrip("/"))
        is_dir = uri.endswith("/") or (in_store is not None and bool(storage.list_keys(in_store)))
        return JobInput(name, uri.rstrip("/") + "/" if is_dir else uri, "dir" if is_dir else "file")
    local = spec.inputs.get(name)
    if local is None or not local.exists():
        raise InputUnreachableError(
            f"Input '{name}' ({uri}) is not in Cloud Storage and not readable here, so no VM can get it.",
            details={"input": name, "uri": uri},
        )
    key = RunPaths(spec.stage_run_id).staged_input(name)
    if local.is_dir():
        storage.put_dir(local, key)
        return JobInput(name, storage.uri(key) + "/", "dir")
    key = f"{key}/{local.name}"  # the VM names the file after the object: keep its own name
    storage.put_file(local, key)
    return JobInput(name, storage.uri(key), "file")
