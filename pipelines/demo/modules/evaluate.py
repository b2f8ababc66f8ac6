"""evaluate: score the trained model on the validation split; write a JSON report."""

from __future__ import annotations

import json

import numpy as np
from modules.mlp import MLP, accuracy, cross_entropy

from goldfish.io import get_config, get_output_path, load_input, log_metrics


def main() -> None:
    """Accuracy, loss, confusion matrix and per-class recall on the validation split."""
    cfg = get_config()
    model = MLP.load(load_input("model"))
    x, y = np.asarray(load_input("val_features")), np.asarray(load_input("val_labels"))
    _, probs = model.forward(x)
    predicted = probs.argmax(axis=1)
    classes = probs.shape[1]
    names = list(cfg.get("class_names") or [])[:classes]
    names += [f"class_{i}" for i in range(len(names), classes)]
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    acc, loss = accuracy(probs, y), cross_entropy(probs, y)
    report = {
        "split": "val",
        "rows": len(y),
        "classes": names,
        "accuracy": acc,
        "loss": loss,
        "confusion_matrix": confusion.tolist(),
        "recall_per_class": {name: round(float(r), 4) for name, r in zip(names, recall, strict=True)},
    }
    log_metrics({"val_acc": acc, "val_loss": loss})
    get_output_path("report", "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"val accuracy {acc:.4f} on {len(y)} rows; confusion {confusion.tolist()}")


if __name__ == "__main__":
    main()
