"""Classifiers over question vectors: which topic a question is about, and whether it is ours at all.

Both are linear models (multinomial and binary logistic regression) fitted once when the index is built
(retrieval/build/models.py, scikit-learn) and applied here with numpy alone, so serving needs no
scikit-learn and a prediction costs a matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LinearClassifier:
    """Weights of a fitted logistic regression: `coef` is (classes, dim), or (1, dim) for a binary model."""

    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        rows = 1 if len(self.classes) == 2 else len(self.classes)
        if self.coef.ndim != 2 or self.coef.shape[0] != rows or self.intercept.shape != (rows,):
            raise ValueError(f"weights of shape {self.coef.shape} / {self.intercept.shape} do not fit "
                             f"{len(self.classes)} classes")

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities, each row summing to 1.

        >>> m = LinearClassifier(("no", "yes"), np.array([[2.0, 0.0]]), np.array([0.0]))
        >>> m.probabilities(np.array([[1.0, 0.0], [-1.0, 0.0]])).round(3).tolist()
        [[0.119, 0.881], [0.881, 0.119]]
        """
        logits = np.atleast_2d(vectors) @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            yes = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - yes, yes], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Classifiers:
    """The two models the assistant consults, saved beside the index they were fitted on."""

    topic: LinearClassifier   # classes: topic ids
    scope: LinearClassifier   # classes: ("out", "in")

    FILE = "classifiers.npz"

    def save(self, folder: Path) -> None:
        with open(Path(folder) / self.FILE, "wb") as f:
            np.savez(f, topic_classes=np.array(self.topic.classes), topic_coef=self.topic.coef,
                     topic_intercept=self.topic.intercept, scope_classes=np.array(self.scope.classes),
                     scope_coef=self.scope.coef, scope_intercept=self.scope.intercept)

    @classmethod
    def load(cls, folder: Path) -> Classifiers:
        with np.load(Path(folder) / cls.FILE, allow_pickle=False) as d:
            return cls(LinearClassifier(tuple(str(c) for c in d["topic_classes"]), d["topic_coef"].astype(np.float32),
                                        d["topic_intercept"].astype(np.float32)),
                       LinearClassifier(tuple(str(c) for c in d["scope_classes"]), d["scope_coef"].astype(np.float32),
                                        d["scope_intercept"].astype(np.float32)))
