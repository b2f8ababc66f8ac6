"""goldfish.io's get_output_path: a path that fits the output's type (checked in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from goldfish.io import GoldfishIOError, get_output_path, save_output

SIGNALS = {
    "inputs": {},
    "outputs": {
        "report": {"type": "file"},
        "model": {"type": "directory"},
        "features": {"type": "npy"},
        "table": {"type": "csv"},
    },
}


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stage environment: declared signals and an empty outputs folder."""
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps(SIGNALS), encoding="utf-8")
    monkeypatch.setenv("GOLDFISH_SIGNALS", str(signals))
    monkeypatch.setenv("GOLDFISH_OUTPUTS_DIR", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def test_get_output_path_of_a_file_output_opens_for_writing_under_the_signal_name(outputs: Path) -> None:
    with open(get_output_path("report"), "w", encoding="utf-8") as handle:
        handle.write("all good")

    assert (outputs / "report" / "report").read_text(encoding="utf-8") == "all good"


def test_get_output_path_of_a_file_output_with_a_filename_uses_that_name(outputs: Path) -> None:
    get_output_path("report", "report.json").write_text("{}", encoding="utf-8")

    assert [p.name for p in (outputs / "report").iterdir()] == ["report.json"]


@pytest.mark.parametrize("filename", ["../escape", "a/b", "..", "", "x\x00y"])
def test_get_output_path_when_the_filename_is_not_a_plain_name_raises(outputs: Path, filename: str) -> None:
    with pytest.raises(GoldfishIOError, match="plain file name"):
        get_output_path("report", filename)


def test_get_output_path_of_a_directory_output_is_an_existing_folder(outputs: Path) -> None:
    folder = get_output_path("model")

    assert folder.is_dir()
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    assert (outputs / "model" / "weights.bin").is_file()


def test_get_output_path_of_npy_and_csv_outputs_are_the_files_save_output_writes(outputs: Path) -> None:
    np.save(get_output_path("features"), np.arange(3.0))
    get_output_path("table").write_text("a,b\n1,2\n", encoding="utf-8")

    assert np.load(outputs / "features" / "data.npy").tolist() == [0.0, 1.0, 2.0]
    assert (outputs / "table" / "data.csv").read_text(encoding="utf-8") == "a,b\n1,2\n"


def test_save_output_of_the_path_get_output_path_gave_keeps_the_file_in_place(outputs: Path) -> None:
    path = get_output_path("report")
    path.write_text("done", encoding="utf-8")

    assert save_output("report", path) == path
    assert [p.name for p in (outputs / "report").iterdir()] == ["report"]


def test_get_output_path_of_an_undeclared_output_names_the_declared_ones(outputs: Path) -> None:
    with pytest.raises(GoldfishIOError, match="features, model, report, table"):
        get_output_path("nope")
