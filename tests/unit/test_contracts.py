"""Output contracts: npy shape/dtype/min_rows and csv columns/min_rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goldfish.pipelines.models import SignalSchema
from goldfish.runs.contracts import check_output, npy_header


def _npy(folder: Path, array: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "data.npy", array)
    return folder


def test_npy_header_when_read_without_numpy_matches_numpy(tmp_path: Path) -> None:
    folder = _npy(tmp_path / "x", np.zeros((5, 3), dtype="float32"))
    header = npy_header(folder / "data.npy")
    assert tuple(header["shape"]) == (5, 3)
    assert header["descr"] == "<f4"


def test_check_output_when_npy_conforms_reports_nothing(tmp_path: Path) -> None:
    folder = _npy(tmp_path / "x", np.zeros((5, 3), dtype="float32"))
    schema = SignalSchema(shape=[None, 3], dtype="float32", min_rows=5)
    assert check_output("npy", folder, schema) == []


def test_check_output_when_npy_shape_dtype_and_rows_differ_names_each_problem(tmp_path: Path) -> None:
    folder = _npy(tmp_path / "x", np.zeros((2, 4), dtype="float64"))
    problems = check_output("npy", folder, SignalSchema(shape=[None, 3], dtype="float32", min_rows=5))
    assert len(problems) == 3
    assert "shape [2, 4]" in problems[0]
    assert "float64" in problems[1]
    assert "min_rows 5" in problems[2]


def test_check_output_when_csv_lacks_a_column_or_rows_reports_them(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    folder.mkdir()
    (folder / "data.csv").write_text("epoch,acc\n1,0.5\n")
    problems = check_output("csv", folder, SignalSchema(columns=["epoch", "loss"], min_rows=2))
    assert any("loss" in p for p in problems)
    assert any("min_rows 2" in p for p in problems)


def test_check_output_when_no_schema_is_declared_checks_nothing(tmp_path: Path) -> None:
    assert check_output("npy", tmp_path, None) == []
