"""The in-stage runtime: what a stage module imports to read inputs and write outputs.

Imports with the standard library alone; numpy and pandas are imported only when a signal
needs them. Every location comes from environment variables set by the backend, so the same
module runs unchanged in a process, a container or a VM::

    from goldfish.io import load_input, save_output, get_config, log_metric
    x = load_input("features")          # npy -> numpy array, csv -> DataFrame, dir/file -> Path
    save_output("model", model_dir)     # directory/file copied in; npy arrays and csv tables written
    open(get_output_path("report"), "w").write(text)   # a file output's path is a file to write

What a stage sees is the same on every backend (process, docker, GCE): each input is a folder
(a ``file`` input or a dataset registered from one file holds that file under its own name);
the working folder is the stage's own empty, writable scratch folder (``GOLDFISH_WORK_DIR``;
relative paths such as ``open("tmp.json", "w")`` land there, and it is discarded afterwards);
the workspace's files are importable and readable under ``GOLDFISH_CODE_DIR`` (read-only).
"""

from __future__ import annotations

import atexit
import csv
import functools
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from goldfish.io.masking import Masker, secret_values

__all__ = [
    "GoldfishIOError",
    "get_config",
    "get_input_path",
    "get_output_path",
    "heartbeat",
    "load_input",
    "log_metric",
    "log_metrics",
    "save_output",
    "should_stop",
]

ENV_INPUTS = "GOLDFISH_INPUTS_DIR"
ENV_OUTPUTS = "GOLDFISH_OUTPUTS_DIR"
ENV_CONFIG = "GOLDFISH_CONFIG"
ENV_RUN_ID = "GOLDFISH_RUN_ID"
ENV_METRICS = "GOLDFISH_METRICS_FILE"
ENV_SIGNALS = "GOLDFISH_SIGNALS"
ENV_HEARTBEAT = "GOLDFISH_HEARTBEAT_FILE"
ENV_STOP = "GOLDFISH_STOP_FILE"

NPY_FILE = "data.npy"
CSV_FILE = "data.csv"
METRIC_BATCH = 100
METRIC_FLUSH_SECONDS = 1.0


class GoldfishIOError(RuntimeError):
    """A stage asked for a signal it did not declare, or wrote one the wrong way."""


def _dir(env: str, default: str) -> Path:
    return Path(os.environ.get(env, default))


def _signals() -> dict[str, dict[str, dict[str, Any]]]:
    path = os.environ.get(ENV_SIGNALS)
    if not path or not Path(path).is_file():
        return {"inputs": {}, "outputs": {}}
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _declared(kind: str, name: str) -> dict[str, Any]:
    declared = _signals().get(kind, {})
    if name not in declared:
        names = ", ".join(sorted(declared)) or "none"
        raise GoldfishIOError(
            f"{kind[:-1]} '{name}' is not declared in pipeline.yaml (declared {kind}: {names})"
        )
    return declared[name]


def get_config() -> dict[str, Any]:
    """The stage's effective config (configs/<stage>.yaml merged with config_override)."""
    path = Path(os.environ.get(ENV_CONFIG, "/mnt/config/config.json"))
    if not path.is_file():
        return {}
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config


def get_input_path(name: str) -> Path:
    """The folder holding input ``name`` (raises for undeclared inputs).

    Every input is a folder, on every backend: a ``file`` input or a dataset registered from
    one file holds that file (under its own name), an ``npy``/``csv`` input its data file, a
    ``directory`` input or a folder dataset the folder's contents. :func:`load_input` opens
    them by type.
    """
    _declared("inputs", name)
    return _dir(ENV_INPUTS, "/mnt/inputs") / name


def _output_folder(name: str) -> tuple[Any, Path]:
    """The declared type of output ``name`` and its folder (created)."""
    kind = _declared("outputs", name).get("type")
    folder = _dir(ENV_OUTPUTS, "/mnt/outputs") / name
    folder.mkdir(parents=True, exist_ok=True)
    return kind, folder


def get_output_path(name: str, filename: str | None = None) -> Path:
    """Where to write output ``name`` yourself (raises for undeclared outputs).

    The path fits the output's type, the same on every backend:

    - ``directory``: a folder that exists; put any files in it.
    - ``file``: a file path to open for writing (its folder exists, the file does not yet):
      ``open(get_output_path("report"), "w")``. The file is named after the signal unless
      ``filename`` (a plain name such as ``"report.json"``) says otherwise.
    - ``npy`` / ``csv``: the file :func:`save_output` would write (``data.npy`` / ``data.csv``),
      e.g. ``np.save(get_output_path("features"), array)`` or ``df.to_csv(get_output_path("t"))``.
    """
    kind, folder = _output_folder(name)
    if filename is not None and kind != "file":
        raise GoldfishIOError(f"output '{name}' is a {kind} output: only file outputs take a filename")
    if kind == "file":
        return folder / _plain_name(filename if filename is not None else name)
    if kind == "npy":
        return folder / NPY_FILE
    if kind == "csv":
        return folder / CSV_FILE
    return folder


def _plain_name(filename: str) -> str:
    if (
        not isinstance(filename, str)
        or filename in ("", ".", "..")
        or "/" in filename
        or "\\" in filename
        or "\x00" in filename
        or len(filename) > 255
    ):
        raise GoldfishIOError(f"filename must be a plain file name, not {str(filename)[:80]!r}")
    return filename


def _single_file(folder: Path, preferred: str, suffix: str) -> Path:
    if (folder / preferred).is_file():
        return folder / preferred
    matches = sorted(folder.glob(f"*{suffix}"))
    if not matches:
        raise GoldfishIOError(f"no {suffix} file in input folder {folder}")
    return matches[0]


def load_input(name: str) -> Any:
    """Load input ``name`` in the form its type suggests.

    npy → numpy array (memory-mapped), csv → pandas DataFrame (or a list of dicts without
    pandas), directory/dataset → Path of the folder, file → Path of the file.
    """
    kind = _declared("inputs", name).get("type")
    folder = get_input_path(name)
    if kind == "npy":
        import numpy as np  # noqa: PLC0415 - only stages with npy signals need numpy

        return np.load(_single_file(folder, NPY_FILE, ".npy"), mmap_mode="r", allow_pickle=False)
    if kind == "csv":
        return _read_csv(_single_file(folder, CSV_FILE, ".csv"))
    if kind == "file":
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return files[0] if len(files) == 1 else folder
    return folder


def _read_csv(path: Path) -> Any:
    try:
        import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return pd.read_csv(path)


def save_output(name: str, value: Any) -> Path:
    """Write output ``name`` and return where it was written.

    npy takes an array, csv a DataFrame or a list of dicts, directory and file outputs a path
    (copied in; a path from :func:`get_output_path` is already in place and stays as it is).
    """
    kind, folder = _output_folder(name)
    if kind == "npy":
        import numpy as np  # noqa: PLC0415

        target = folder / NPY_FILE
        np.save(target, np.asarray(value), allow_pickle=False)
        return target
    if kind == "csv":
        return _write_csv(folder / CSV_FILE, value)
    source = Path(value)
    if kind == "file":
        if not source.is_file():
            raise GoldfishIOError(f"output '{name}' is a file output but {source} is not a file")
        target = folder / source.name
        if target.exists() and target.samefile(source):
            return target
        return Path(shutil.copy2(source, target))
    if not source.is_dir():
        raise GoldfishIOError(f"output '{name}' is a directory output but {source} is not a folder")
    if source.resolve() != folder.resolve():
        shutil.copytree(source, folder, dirs_exist_ok=True, symlinks=True)
    return folder


def _write_csv(target: Path, value: Any) -> Path:
    if hasattr(value, "to_csv"):
        value.to_csv(target, index=False)
        return target
    rows = list(value)
    columns = list(rows[0]) if rows else []
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return target


class _MetricWriter:
    """Buffers metric points and appends them as JSON lines, in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: list[str] = []
        self._last_flush = time.monotonic()
        atexit.register(self.flush)

    def add(self, name: str, value: float, step: int | None) -> None:
        name = _masker().mask_text(name)  # a secret's value never reaches the stored metrics
        line = json.dumps({"name": name, "value": float(value), "step": step, "at": time.time()})
        with self._lock:
            self._buffer.append(line)
            due = (
                len(self._buffer) >= METRIC_BATCH
                or time.monotonic() - self._last_flush >= METRIC_FLUSH_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        if not lines:
            return
        path = Path(os.environ.get(ENV_METRICS, "/mnt/outputs/.goldfish/metrics.jsonl"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


_metrics = _MetricWriter()


@functools.cache
def _masker() -> Masker:
    return Masker(secret_values())


def _check_metric_name(name: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise GoldfishIOError("metric names must be non-empty text of at most 200 characters")


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record one metric point (flushed in batches and when the stage exits)."""
    _check_metric_name(name)
    _metrics.add(name, value, step)


def log_metrics(values: dict[str, float], step: int | None = None) -> None:
    """Record several metrics at the same step."""
    for name, value in values.items():
        log_metric(name, value, step)


def heartbeat(message: str = "") -> None:
    """Tell Goldfish the stage is alive (and what it is doing)."""
    _metrics.flush()
    path = os.environ.get(ENV_HEARTBEAT)
    if path:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps({"at": time.time(), "message": str(message)[:500]}), encoding="utf-8")
        tmp.replace(path)


_stop = threading.Event()


def _on_term(signum: int, frame: object) -> None:
    _stop.set()


def should_stop() -> bool:
    """True after a cancel or a spot preemption notice: save what you can and exit."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _on_term)
    stop_file = os.environ.get(ENV_STOP)
    return _stop.is_set() or bool(stop_file and Path(stop_file).exists())
