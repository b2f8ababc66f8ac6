"""SVS output statistics (``goldfish.io.stats``) against numpy's own results on generated data."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from goldfish.io import stats as svs_stats
from goldfish.io.stats import csv_stats, entropy_of_counts, npy_stats, output_stats


def _save(tmp_path: Path, array: np.ndarray, name: str = "data.npy") -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


def _histogram_entropy(values: np.ndarray) -> float:
    low, high = float(values.min()), float(values.max())
    counts, _ = np.histogram(values, bins=64, range=(low, high) if high > low else None)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_npy_stats_with_nans_match_numpy_over_the_finite_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    array = rng.normal(3.0, 2.5, size=(5000, 4)).astype(np.float32)
    array[rng.random(array.shape) < 0.1] = np.nan
    array[0, 0] = np.inf
    stats = npy_stats(_save(tmp_path, array), sample_size=50_000)
    finite = array[np.isfinite(array)].astype(np.float64)
    assert stats["count"] == array.size and stats["shape"] == [5000, 4] and stats["dtype"] == "float32"
    assert stats["nan_ratio"] == pytest.approx(1 - finite.size / array.size)
    assert stats["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(finite.std(), rel=1e-10)
    assert stats["min"] == finite.min() and stats["max"] == finite.max()
    # Fewer values than the sample: the sample is every finite value, so these are exact too.
    assert stats["sample_count"] == finite.size
    assert stats["unique_ratio"] == pytest.approx(np.unique(finite).size / finite.size)
    assert stats["entropy"] == pytest.approx(_histogram_entropy(finite))


def test_npy_stats_across_many_chunks_stay_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svs_stats, "CHUNK_BYTES", 4096)  # hundreds of chunks of a small array
    rng = np.random.default_rng(1)
    array = rng.exponential(5.0, size=200_003).astype(np.float64) + 1e6
    stats = npy_stats(_save(tmp_path, array), sample_size=1000)
    assert stats["mean"] == pytest.approx(array.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(array.std(), rel=1e-9)
    assert (stats["min"], stats["max"]) == (array.min(), array.max())
    assert stats["sample_count"] == 1000
    assert 0.99 <= stats["unique_ratio"] <= 1.0


def test_npy_reservoir_sample_is_uniform_over_the_stream() -> None:
    # First half zeros, second half ones: a sample biased to either end would show it.
    array = np.concatenate([np.zeros(50_000), np.ones(50_000)])
    reservoir = svs_stats._Reservoir(np, 2000, seed=11)
    for start in range(0, array.size, 1000):
        reservoir.add(array[start : start + 1000])
    assert reservoir.values.size == 2000
    share = float(reservoir.values.mean())
    assert 0.45 < share < 0.55, share


def test_npy_stats_of_a_constant_array_have_zero_spread(tmp_path: Path) -> None:
    stats = npy_stats(_save(tmp_path, np.full((1000, 3), 2.5, dtype=np.float32)))
    assert stats["std"] == 0.0 and stats["entropy"] == 0.0 and stats["unique_ratio"] == 1 / 3000


def test_npy_stats_of_integers_and_all_nan_arrays(tmp_path: Path) -> None:
    ints = np.arange(-50, 50, dtype=np.int16)
    stats = npy_stats(_save(tmp_path, ints, "i.npy"))
    assert stats["mean"] == pytest.approx(ints.mean()) and stats["nan_ratio"] == 0.0
    empty = npy_stats(_save(tmp_path, np.full(10, np.nan), "n.npy"))
    assert empty["nan_ratio"] == 1.0 and empty["mean"] is None and empty["entropy"] is None


def test_csv_stats_match_counts_for_a_skewed_label_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    labels = rng.choice(["cat", "dog", "eel"], p=[0.9, 0.08, 0.02], size=3000)
    values = rng.normal(size=3000)
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "x", "note"])
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            writer.writerow([label, "" if i % 10 == 0 else repr(float(value)), "n/a" if i % 2 else "hi"])
    stats = csv_stats(path)
    assert stats["rows"] == 3000
    label = stats["columns"]["label"]
    counts = Counter(labels.tolist())
    assert label["unique_count"] == 3 and label["null_ratio"] == 0.0
    assert label["entropy"] == pytest.approx(entropy_of_counts(counts.values()))
    assert "mean" not in label
    x = stats["columns"]["x"]
    kept = np.array([float(v) for i, v in enumerate(values) if i % 10 != 0])
    assert x["null_ratio"] == pytest.approx(0.1)
    assert x["mean"] == pytest.approx(kept.mean()) and x["std"] == pytest.approx(kept.std())
    assert stats["columns"]["note"]["null_ratio"] == 0.5


def test_entropy_of_a_collapsed_column_is_zero_and_of_two_even_classes_one_bit() -> None:
    assert entropy_of_counts([500]) == 0.0
    assert entropy_of_counts([10, 10]) == pytest.approx(1.0)
    assert math.isclose(entropy_of_counts([1, 1, 1, 1]), 2.0)


def test_output_stats_says_why_when_the_data_file_is_missing(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "readme.txt").write_text("hi")
    assert "no .npy file" in output_stats("npy", tmp_path / "out")["error"]
    assert output_stats("directory", tmp_path / "out") == {"type": "directory", "files": 1, "bytes": 2}
