"""Classifiers: which topic a question is about, and whether it is ours at all.

Linear models fitted once when the index is built (retrieval/build/models.py, scikit-learn) and
applied here with numpy alone, so serving needs no scikit-learn and a prediction costs a product: the
topic and the scope of the question's vector (logistic regressions over the embedding), and the topic
and the scope of its words (logistic regressions over TF-IDF of jieba words and word pairs). The words
see what the embedding blurs: "APN", "解锁", "激活" make a question about a carrier not ours, and "交话费",
"月租", "到账" name a topic however long the story around them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from retrieval.serving.text import words


@lru_cache(maxsize=64)
def terms_of(text: str) -> tuple[str, ...]:
    """The features of the word models: jieba words and adjacent word pairs. Remembered for the last few
    texts, since both word models read the same question one after the other (jieba is most of their cost).

    >>> terms_of("怎么充值话费")
    ('怎么', '充值', '话费', '怎么_充值', '充值_话费')
    """
    found = words(text)
    return (*found, *(f"{a}_{b}" for a, b in zip(found, found[1:], strict=False)))


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
        return self.from_logits(np.atleast_2d(vectors) @ self.coef.T + self.intercept)

    def from_logits(self, logits: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities from (n, rows) logits: a sigmoid for a binary model, else a softmax."""
        if len(self.classes) == 2:
            yes = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - yes, yes], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class WordModel:
    """A logistic regression over TF-IDF (sublinear tf, L2-normalised) of `terms_of(text)`: `linear` has one
    weight per term (binary, towards its second class) or per class and term."""

    terms: tuple[str, ...]
    idf: np.ndarray         # per term
    linear: LinearClassifier

    def __post_init__(self) -> None:
        if self.linear.coef.shape[1] != len(self.terms) or self.idf.shape != (len(self.terms),):
            raise ValueError(f"{len(self.terms)} terms do not fit weights of shape {self.linear.coef.shape}")
        object.__setattr__(self, "_index", {term: i for i, term in enumerate(self.terms)})

    def probabilities(self, text: str) -> np.ndarray:
        """Per class, for `text` as matched (normalised, provider names out); a text with no known term gets
        the classes' prior (the intercepts alone).

        >>> m = WordModel(("话费", "退款"), np.ones(2),
        ...               LinearClassifier(("refund", "topup"), np.array([[4.0, -4.0]]), np.array([0.0])))
        >>> m.probabilities("怎么交话费").round(3).tolist(), m.probabilities("hello").tolist()
        ([0.018, 0.982], [0.5, 0.5])
        """
        counts = Counter(t for t in terms_of(text) if t in self._index)
        logits = self.linear.intercept.astype(np.float64)
        if counts:  # only the question's terms: a sparse product
            rows = np.array([self._index[t] for t in counts])
            tfidf = np.array([1.0 + math.log(n) for n in counts.values()]) * self.idf[rows]
            logits = logits + self.linear.coef[:, rows] @ (tfidf / np.linalg.norm(tfidf))
        return self.linear.from_logits(logits[None, :])[0]

    def probability(self, text: str, of: str = "in") -> float:
        """The probability of one class, by default that `text` is ours."""
        return float(self.probabilities(text)[self.linear.classes.index(of)])


@dataclass(frozen=True)
class Classifiers:
    """The models the assistant consults, saved beside the index they were fitted on."""

    topic: LinearClassifier   # classes: topic ids; what ranking reads
    scope: LinearClassifier   # classes: ("out", "in")
    words: WordModel          # classes ("out", "in"): the scope of the question's words
    # The topic model fitted on the phrasings alone, whose confidence the decline rule reads (the same model
    # as `topic` when there are no topic examples).
    decline_topic: LinearClassifier
    # The topic of the question's words, learned from the same phrasings and topic examples as `topic`;
    # the two are multiplied (a product of experts) when offers are weighed.
    word_topic: WordModel

    FILE = "classifiers.npz"

    def save(self, folder: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name, model in (("topic", self.topic), ("scope", self.scope), ("decline_topic", self.decline_topic)):
            arrays |= _linear_arrays(name, model)
        for name, model in (("words", self.words), ("word_topic", self.word_topic)):
            arrays |= _linear_arrays(name, model.linear)
            arrays |= {f"{name}_terms": np.array(model.terms), f"{name}_idf": model.idf}
        with open(Path(folder) / self.FILE, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, folder: Path) -> Classifiers:
        with np.load(Path(folder) / cls.FILE, allow_pickle=False) as d:
            def linear(name: str, dtype=np.float32) -> LinearClassifier:
                return LinearClassifier(tuple(str(c) for c in d[f"{name}_classes"]),
                                        d[f"{name}_coef"].astype(dtype), d[f"{name}_intercept"].astype(dtype))

            def words(name: str) -> WordModel:
                return WordModel(tuple(str(t) for t in d[f"{name}_terms"]), d[f"{name}_idf"].astype(np.float64),
                                 linear(name, np.float64))

            return cls(linear("topic"), linear("scope"), words("words"), linear("decline_topic"),
                       words("word_topic"))


def _linear_arrays(name: str, model: LinearClassifier) -> dict[str, np.ndarray]:
    return {f"{name}_classes": np.array(model.classes), f"{name}_coef": model.coef,
            f"{name}_intercept": model.intercept}
