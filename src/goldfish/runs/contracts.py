"""Output contracts: the optional ``schema`` of a signal (shape, dtype, columns, min_rows).

Checked after a stage ends, reading only headers and counting rows: an npy array's header is
parsed directly (no numpy needed), a CSV is streamed.
"""

from __future__ import annotations

import ast
import csv
import struct
from pathlib import Path
from typing import Any

from goldfish.pipelines.models import SignalSchema

_NPY_MAGIC = b"\x93NUMPY"
_DTYPE_NAMES = {
    "b1": "bool",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
    "c8": "complex64",
    "c16": "complex128",
}


def npy_header(path: Path) -> dict[str, Any]:
    """The header dict of an ``.npy`` file (descr, fortran_order, shape)."""
    with path.open("rb") as handle:
        if handle.read(6) != _NPY_MAGIC:
            raise ValueError("not an .npy file")
        major = handle.read(2)[0]
        size_bytes = 2 if major == 1 else 4
        (length,) = struct.unpack("<H" if size_bytes == 2 else "<I", handle.read(size_bytes))
        header = ast.literal_eval(handle.read(length).decode("latin1"))
    if not isinstance(header, dict):
        raise ValueError("malformed .npy header")
    return header


def dtype_name(descr: str) -> str:
    """``'<f4'`` → ``'float32'`` (unknown codes are returned as given)."""
    return _DTYPE_NAMES.get(descr.lstrip("<>|="), descr)


def _check_npy(folder: Path, schema: SignalSchema) -> list[str]:
    files = sorted(folder.glob("*.npy"))
    if not files:
        return ["no .npy file"]
    try:
        header = npy_header(files[0])
    except (OSError, ValueError, SyntaxError) as exc:
        return [f"{files[0].name} is not a readable .npy file ({exc})"]
    problems = []
    shape = tuple(header.get("shape", ()))
    if schema.shape is not None:
        expected = schema.shape
        if len(shape) != len(expected) or any(
            e is not None and e != s for e, s in zip(expected, shape, strict=False)
        ):
            problems.append(f"shape {list(shape)} does not match {expected}")
    if schema.dtype is not None and dtype_name(str(header.get("descr"))) != schema.dtype:
        problems.append(f"dtype {dtype_name(str(header.get('descr')))} is not {schema.dtype}")
    if schema.min_rows is not None and (not shape or shape[0] < schema.min_rows):
        problems.append(f"{shape[0] if shape else 0} rows, fewer than min_rows {schema.min_rows}")
    return problems


def _check_csv(folder: Path, schema: SignalSchema) -> list[str]:
    files = sorted(folder.glob("*.csv"))
    if not files:
        return ["no .csv file"]
    with files[0].open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        columns = next(reader, [])
        rows = sum(1 for _ in reader)
    problems = []
    missing = [c for c in schema.columns or [] if c not in columns]
    if missing:
        problems.append(f"missing column(s) {missing} (has {columns[:20]})")
    if schema.min_rows is not None and rows < schema.min_rows:
        problems.append(f"{rows} rows, fewer than min_rows {schema.min_rows}")
    return problems


def check_output(kind: str, folder: Path, schema: SignalSchema | None) -> list[str]:
    """Contract problems of one stored output (empty when it conforms or has no schema)."""
    if schema is None:
        return []
    if kind == "npy":
        return _check_npy(folder, schema)
    if kind == "csv":
        return _check_csv(folder, schema)
    return []
