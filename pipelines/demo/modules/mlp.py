"""A one-hidden-layer MLP with a softmax output, in numpy (shared by train and evaluate)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTS = ("w1", "b1", "w2", "b2")


@dataclass
class MLP:
    """``softmax(tanh(x @ w1 + b1) @ w2 + b2)``."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def init(cls, features: int, hidden: int, classes: int, seed: int) -> MLP:
        """Small random weights (Xavier-scaled), zero biases."""
        rng = np.random.default_rng(seed)
        return cls(
            w1=rng.normal(0.0, np.sqrt(1.0 / features), (features, hidden)),
            b1=np.zeros(hidden),
            w2=rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, classes)),
            b2=np.zeros(classes),
        )

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hidden activations and class probabilities."""
        hidden = np.tanh(x @ self.w1 + self.b1)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return hidden, exp / exp.sum(axis=1, keepdims=True)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, l2: float) -> float:
        """One gradient step on a batch; returns the batch's cross-entropy before the step."""
        hidden, probs = self.forward(x)
        n = len(y)
        loss = cross_entropy(probs, y)
        grad_logits = probs.copy()
        grad_logits[np.arange(n), y] -= 1.0
        grad_logits /= n
        grad_w2 = hidden.T @ grad_logits + l2 * self.w2
        grad_hidden = (grad_logits @ self.w2.T) * (1.0 - hidden**2)
        grad_w1 = x.T @ grad_hidden + l2 * self.w1
        self.w2 -= lr * grad_w2
        self.b2 -= lr * grad_logits.sum(axis=0)
        self.w1 -= lr * grad_w1
        self.b1 -= lr * grad_hidden.sum(axis=0)
        return loss

    def save(self, folder: Path, meta: dict[str, object]) -> None:
        """Weights as .npy files plus ``model.json`` (shapes and training facts)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in WEIGHTS:
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)
        shapes = {name: list(getattr(self, name).shape) for name in WEIGHTS}
        (folder / "model.json").write_text(json.dumps({**meta, "shapes": shapes}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> MLP:
        """Read what :meth:`save` wrote."""
        return cls(*(np.load(folder / f"{name}.npy", allow_pickle=False) for name in WEIGHTS))


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Share of rows whose most likely class is the true one."""
    return float((probs.argmax(axis=1) == y).mean())
