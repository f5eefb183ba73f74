"""Classifiers: which topic a question is about, and whether it is ours at all.

Three linear models fitted once when the index is built (retrieval/build/models.py, scikit-learn) and
applied here with numpy alone, so serving needs no scikit-learn and a prediction costs a product: the
topic and the scope of the question's vector (logistic regressions over the embedding), and the scope of
its words (a logistic regression over TF-IDF of jieba words and word pairs), which sees what the
embedding blurs: "APN", "解锁", "激活" make a question about a carrier not ours.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.serving.text import words


def terms_of(text: str) -> list[str]:
    """The features of the word model: jieba words and adjacent word pairs.

    >>> terms_of("怎么充值话费")
    ['怎么', '充值', '话费', '怎么_充值', '充值_话费']
    """
    found = words(text)
    return found + [f"{a}_{b}" for a, b in zip(found, found[1:], strict=False)]


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
class WordModel:
    """A binary logistic regression over TF-IDF (sublinear tf, L2-normalised) of `terms_of(text)`."""

    terms: tuple[str, ...]
    idf: np.ndarray        # per term
    coef: np.ndarray       # per term, towards "in scope"
    intercept: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {term: i for i, term in enumerate(self.terms)})

    def probability(self, text: str) -> float:
        """The probability that `text` (as matched: normalised, provider names out) is ours."""
        counts = Counter(t for t in terms_of(text) if t in self._index)
        if not counts:
            return 1.0 / (1.0 + math.exp(-self.intercept))
        rows = np.array([self._index[t] for t in counts])
        tfidf = np.array([1.0 + math.log(n) for n in counts.values()]) * self.idf[rows]
        tfidf /= np.linalg.norm(tfidf)
        return float(1.0 / (1.0 + np.exp(-(tfidf @ self.coef[rows] + self.intercept))))


@dataclass(frozen=True)
class Classifiers:
    """The models the assistant consults, saved beside the index they were fitted on."""

    topic: LinearClassifier   # classes: topic ids; what ranking reads
    scope: LinearClassifier   # classes: ("out", "in")
    words: WordModel          # the scope of the question's words
    # The topic model fitted on the phrasings alone, whose confidence the decline rule reads (the same model
    # as `topic` when there are no topic examples).
    decline_topic: LinearClassifier

    FILE = "classifiers.npz"

    def save(self, folder: Path) -> None:
        with open(Path(folder) / self.FILE, "wb") as f:
            np.savez(f, topic_classes=np.array(self.topic.classes), topic_coef=self.topic.coef,
                     topic_intercept=self.topic.intercept, scope_classes=np.array(self.scope.classes),
                     scope_coef=self.scope.coef, scope_intercept=self.scope.intercept,
                     words_terms=np.array(self.words.terms), words_idf=self.words.idf, words_coef=self.words.coef,
                     words_intercept=np.array([self.words.intercept]),
                     decline_topic_classes=np.array(self.decline_topic.classes),
                     decline_topic_coef=self.decline_topic.coef,
                     decline_topic_intercept=self.decline_topic.intercept)

    @classmethod
    def load(cls, folder: Path) -> Classifiers:
        with np.load(Path(folder) / cls.FILE, allow_pickle=False) as d:
            def linear(name: str) -> LinearClassifier:
                return LinearClassifier(tuple(str(c) for c in d[f"{name}_classes"]),
                                        d[f"{name}_coef"].astype(np.float32), d[f"{name}_intercept"].astype(np.float32))

            return cls(linear("topic"), linear("scope"),
                       WordModel(tuple(str(t) for t in d["words_terms"]), d["words_idf"].astype(np.float64),
                                 d["words_coef"].astype(np.float64), float(d["words_intercept"][0])),
                       linear("decline_topic"))
