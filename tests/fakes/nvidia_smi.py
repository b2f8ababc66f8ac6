"""A fake ``nvidia-smi`` for machines without a GPU: answers ``--query-gpu`` CSV queries.

Installed on PATH by :func:`install_fake_nvidia_smi` as a tiny shell script that runs this file.
The GPUs it reports come from the JSON file named by ``FAKE_NVIDIA_SMI_STATE`` (written by
:func:`write_state`; tests change it to make memory busy), else two idle 80 GB GPUs. It prints
what the real tool prints for ``--query-gpu=FIELDS --format=csv,noheader,nounits`` (one line per
GPU, the fields in the order asked, ``[N/A]`` for a field it does not know) and ``-L``; with
``"fail": true`` in the state it exits 9 like a driver that lost its GPUs.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

STATE_ENV = "FAKE_NVIDIA_SMI_STATE"
IDLE_GPU = {"memory.total": 81559, "memory.used": 0, "utilization.gpu": 0, "temperature.gpu": 31}


def default_gpus(count: int = 2) -> list[dict[str, Any]]:
    """``count`` idle H100-like GPUs."""
    return [
        {"index": i, "uuid": f"GPU-fake-{i:04d}", "name": "NVIDIA H100 80GB HBM3", **IDLE_GPU}
        for i in range(count)
    ]


def write_state(path: Path, gpus: list[dict[str, Any]], *, fail: bool = False) -> None:
    """Replace what the fake reports (atomically, so a concurrent query never reads half)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"gpus": gpus, "fail": fail}), encoding="utf-8")
    tmp.replace(path)


def install_fake_nvidia_smi(bin_dir: Path, state: Path, gpus: list[dict[str, Any]] | None = None) -> None:
    """Put ``nvidia-smi`` into ``bin_dir`` reading ``state`` (prepend ``bin_dir`` to PATH yourself)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    write_state(state, default_gpus() if gpus is None else gpus)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        f'#!/bin/sh\nFAKE_NVIDIA_SMI_STATE="${{FAKE_NVIDIA_SMI_STATE:-{state}}}" '
        f'exec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _value(gpu: dict[str, Any], field: str) -> str:
    if field == "memory.free":
        return str(gpu["memory.total"] - gpu["memory.used"])
    value = gpu.get(field)
    return "[N/A]" if value is None else str(value)


def main(argv: list[str]) -> int:
    path = os.environ.get(STATE_ENV)
    state = json.loads(Path(path).read_text(encoding="utf-8")) if path else {"gpus": default_gpus()}
    if state.get("fail"):
        print("Unable to determine the device handle for GPU0000:00:04.0: Unknown Error", file=sys.stderr)
        return 9
    gpus = state["gpus"]
    query = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--query-gpu=")), None)
    if query is not None:
        fields = [field.strip() for field in query.split(",")]
        for gpu in gpus:
            print(", ".join(_value(gpu, field) for field in fields))
        return 0
    if "-L" in argv:
        for gpu in gpus:
            print(f"GPU {gpu['index']}: {gpu['name']} (UUID: {gpu['uuid']})")
        return 0
    print(f"fake nvidia-smi: {len(gpus)} GPU(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
