"""What the bucket and the VM say about one attempt: ended how, logs and outputs mirrored, alive.

A handful of single-object reads per check, whatever the number of runs: the exit code, the
preemption and failure objects, the heartbeat; the logs are appended to the local copies so
metrics and heartbeats flow as they do locally.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from goldfish.backends.protocol import BackendStatus, Handle
from goldfish.storage.paths import RunPaths
from goldfish.storage.protocol import Storage
from goldfish.timeutil import parse_iso

BOOT_GRACE_SECONDS = 600
MIRRORED = ("stdout", "stderr", "metrics", "stage_heartbeat", "svs_stats")
_LOCAL_NAMES = {
    "stdout": "stdout.log",
    "stderr": "stderr.log",
    "metrics": "metrics.jsonl",
    "stage_heartbeat": "heartbeat.json",
    "svs_stats": "svs_stats.json",
}


def ended(storage: Storage, handle: Handle, paths: RunPaths) -> BackendStatus | None:
    """How the attempt ended (exit code, preemption or failure object), or None while it has not.

    An exit code also brings the logs and outputs home.
    """
    attempt = int(handle.get("attempt", 1))
    raw = storage.read_bytes(paths.exit_code)
    if raw is not None:
        mirror_logs(storage, handle, paths)
        fetch_outputs(storage, handle, paths)
        try:
            return BackendStatus("exited", exit_code=int(raw.decode().strip()))
        except ValueError:
            return BackendStatus("lost", detail=f"the VM wrote an unreadable exit code: {raw[:40]!r}")
    for key, state in ((paths.preempted, "preempted"), (paths.failure, "infra_error")):
        report = json_object(storage.read_bytes(key))
        if report is not None and int(report.get("attempt", attempt)) == attempt:
            mirror_logs(storage, handle, paths)
            detail = str(report.get("reason") or f"the VM of attempt {attempt} was preempted")
            return BackendStatus(state, detail=detail[:2000])  # type: ignore[arg-type]
    return None


def mirror_logs(storage: Storage, handle: Handle, paths: RunPaths) -> None:
    """Append what is new in the bucket's log objects to the local copies (logs only grow)."""
    logs_dir = Path(handle["logs_dir"])
    logs_dir.mkdir(parents=True, exist_ok=True)
    keys = {
        "stdout": paths.stdout,
        "stderr": paths.stderr,
        "metrics": paths.metrics,
        "stage_heartbeat": paths.stage_heartbeat,
        "svs_stats": paths.svs_stats,
    }
    for item in MIRRORED:
        local = logs_dir / _LOCAL_NAMES[item]
        if item in ("stage_heartbeat", "svs_stats"):  # rewritten whole, not appended
            data = storage.read_bytes(keys[item])
            if data is not None:
                local.write_bytes(data)
            continue
        size = local.stat().st_size if local.exists() else 0
        data = storage.read_bytes(keys[item], size)  # bytes: a split character stays whole
        if data:
            with local.open("ab") as out:
                out.write(data)


def fetch_outputs(storage: Storage, handle: Handle, paths: RunPaths) -> None:
    """Download each declared output not yet here (through ``.partial-<signal>``, renamed once whole)."""
    outputs_dir = Path(handle["outputs_dir"])
    for signal in handle.get("outputs", []):
        target = outputs_dir / str(signal)
        if target.exists():
            continue
        partial = outputs_dir / f".partial-{signal}"  # renamed only once complete
        shutil.rmtree(partial, ignore_errors=True)
        storage.get_dir(paths.output(str(signal)), partial)
        os.replace(partial, target)


def stale_heartbeat(storage: Storage, handle: Handle, paths: RunPaths) -> str | None:
    """Why the running VM counts as lost (heartbeat older than ``3 * interval + 60 s``), or None."""
    interval = float(handle.get("log_sync_interval", 10))
    limit = 3 * interval + 60
    beat = json_object(storage.read_bytes(paths.heartbeat))
    if beat is not None and beat.get("at"):
        age = time.time() - parse_iso(str(beat["at"])).timestamp()
        if age > limit:
            return f"no heartbeat for {age:.0f}s (limit {limit:.0f}s) while the VM runs"
        return None
    age = time.time() - parse_iso(str(handle["launched_at"])).timestamp()
    if age > limit + BOOT_GRACE_SECONDS:
        return f"the VM never sent a heartbeat in {age:.0f}s"
    return None


def stopped_without_exit_code(info: Any) -> BackendStatus:
    """A VM that stopped (or vanished) before its agent wrote an exit code, preemption or failure.

    Compute Engine stops a spot VM it reclaims, and a GPU VM (``onHostMaintenance: TERMINATE``) at
    host maintenance or a host error, with about 30 s of warning: the agent may be killed before
    it reports. Those are retried; only a VM that is gone altogether is lost.
    """
    if info is None:
        return BackendStatus("lost", detail="the VM is gone and left no exit code")
    if info.spot:
        return BackendStatus("preempted", detail=f"the spot VM {info.name} was stopped before it finished")
    return BackendStatus(
        "infra_error",
        detail=f"the VM {info.name} was stopped ({info.status}) before it finished, e.g. by host maintenance",
    )


def json_object(raw: bytes | None) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object (None when absent, not JSON or not an object)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
