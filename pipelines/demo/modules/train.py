"""train: mini-batch gradient descent on a one-hidden-layer MLP; logs loss and accuracy per epoch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from modules.mlp import MLP, accuracy, cross_entropy

from goldfish.io import get_config, heartbeat, load_input, log_metrics, save_output, should_stop


def main() -> None:
    """Train, then save the weights (model/) and the per-epoch history (history.csv)."""
    cfg = get_config()
    x, y = np.asarray(load_input("train_features")), np.asarray(load_input("train_labels"))
    x_val, y_val = np.asarray(load_input("val_features")), np.asarray(load_input("val_labels"))
    classes = int(max(y.max(), y_val.max())) + 1
    lr, l2 = float(cfg.get("lr", 0.1)), float(cfg.get("l2", 0.0))
    epochs, batch = int(cfg.get("epochs", 30)), int(cfg.get("batch_size", 64))
    seed = int(cfg.get("seed", 0))
    model = MLP.init(x.shape[1], int(cfg.get("hidden", 16)), classes, seed)
    rng = np.random.default_rng(seed)

    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            rows = order[start : start + batch]
            model.step(x[rows], y[rows], lr, l2)
        _, probs = model.forward(x)
        _, val_probs = model.forward(x_val)
        point = {
            "loss": cross_entropy(probs, y),
            "train_acc": accuracy(probs, y),
            "val_loss": cross_entropy(val_probs, y_val),
            "val_acc": accuracy(val_probs, y_val),
        }
        log_metrics(point, step=epoch)
        history.append({"epoch": epoch, **{k: round(v, 6) for k, v in point.items()}})
        heartbeat(f"epoch {epoch}/{epochs} loss {point['loss']:.4f}")
        if should_stop():
            print(f"stop requested: saving the model after epoch {epoch}")
            break

    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp), {"classes": classes, "epochs": len(history), **cfg})
        save_output("model", tmp)
    save_output("history", history)
    last = history[-1]
    print(
        f"epoch {last['epoch']}: loss {last['loss']:.4f} train_acc {last['train_acc']:.3f} "
        f"val_acc {last['val_acc']:.3f}"
    )


if __name__ == "__main__":
    main()
