"""Write the demo dataset: two Gaussian blobs and a ring in 4 dimensions, as one CSV.

Deterministic (fixed seed), numpy only. Usage::

    python make_data.py TARGET_FOLDER [--rows 2000] [--seed 7]

writes ``TARGET_FOLDER/blobs.csv`` with columns ``x0..x3,label`` (label 0, 1 or 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FEATURES = 4
CLASSES = 3
RING_RADIUS = 2.0


def make_blobs(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` shuffled points of three classes that no straight line separates.

    Class 0 is a round blob at the origin, class 1 a noisy ring around it (in x0/x1) and
    class 2 a blob shifted along x2; x3 is pure noise.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % CLASSES
    features = rng.normal(0.0, 0.5, (rows, FEATURES))
    ring = labels == 1
    angle = rng.uniform(0.0, 2 * np.pi, ring.sum())
    radius = RING_RADIUS + rng.normal(0.0, 0.35, ring.sum())
    features[ring, 0] = radius * np.cos(angle)
    features[ring, 1] = radius * np.sin(angle)
    features[labels == 2, 2] += 2.2
    order = rng.permutation(rows)
    return features[order], labels[order]


def write_dataset(target: Path, rows: int = 2000, seed: int = 7) -> Path:
    """Write ``target/blobs.csv`` and return its path."""
    features, labels = make_blobs(rows, seed)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "blobs.csv"
    header = ",".join([*(f"x{i}" for i in range(FEATURES)), "label"])
    lines = [header] + [
        ",".join([*(f"{v:.6f}" for v in row), str(int(label))])
        for row, label in zip(features, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="folder to write blobs.csv into")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    path = write_dataset(args.target, args.rows, args.seed)
    print(f"wrote {args.rows} rows ({FEATURES} features, {CLASSES} classes) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
