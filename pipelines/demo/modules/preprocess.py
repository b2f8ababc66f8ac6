"""preprocess: read the registered CSV, shuffle, split train/val, standardise with train statistics."""

from __future__ import annotations

import csv

import numpy as np

from goldfish.io import get_config, load_input, log_metrics, save_output


def main() -> None:
    """Write train/val features (float32) and labels (int64)."""
    cfg = get_config()
    raw = load_input("raw")  # a registered dataset is a folder
    with (raw / cfg.get("file", "blobs.csv")).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    label_column = cfg.get("label_column", "label")
    columns = [name for name in rows[0] if name != label_column]
    features = np.array([[float(row[c]) for c in columns] for row in rows], dtype=np.float64)
    labels = np.array([int(row[label_column]) for row in rows], dtype=np.int64)

    order = np.random.default_rng(int(cfg.get("seed", 0))).permutation(len(labels))
    n_val = round(len(labels) * float(cfg.get("val_fraction", 0.2)))
    val, train = order[:n_val], order[n_val:]
    mean = features[train].mean(axis=0)
    std = features[train].std(axis=0) + 1e-8

    save_output("train_features", ((features[train] - mean) / std).astype(np.float32))
    save_output("train_labels", labels[train])
    save_output("val_features", ((features[val] - mean) / std).astype(np.float32))
    save_output("val_labels", labels[val])
    log_metrics({"rows": len(labels), "train_rows": len(train), "val_rows": n_val})
    print(f"{len(labels)} rows, {len(columns)} features {columns}: {len(train)} train / {n_val} val")


if __name__ == "__main__":
    main()
