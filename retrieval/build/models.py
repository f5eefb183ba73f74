"""Fitting the classifiers the assistant consults, from the index's own vectors (no extra embedding).

The topic model learns every phrasing of every entry, provider names taken out, labelled only by its
topic: pooled over all providers, thousands of examples for sixteen-odd topics, so "怎么交话费" learns
from how people ask about topping up anywhere. The scope model learns the same phrasings against the
questions we decline (knowledge/out_of_scope.yaml, many of them near the line). Both are plain
logistic regressions: deterministic, seconds to fit, a matrix product to apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.chunks import Key, KeyKind
from retrieval.serving.classifier import Classifiers, LinearClassifier


@dataclass(frozen=True)
class FitConfig:
    """Regularisation of the two models (larger C: fit the phrasings more closely); chosen on the dev set."""

    topic_c: float = 16.0
    scope_c: float = 4.0
    max_iter: int = 3000

    def __post_init__(self) -> None:
        if self.topic_c <= 0 or self.scope_c <= 0:
            raise ValueError(f"C must be positive, got topic_c={self.topic_c}, scope_c={self.scope_c}")


def _fit(x: np.ndarray, y: Sequence[str], c: float, max_iter: int, balanced: bool = False) -> LinearClassifier:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced" if balanced else None)
    model.fit(x, np.asarray(y))
    return LinearClassifier(tuple(str(k) for k in model.classes_), model.coef_.astype(np.float32),
                            model.intercept_.astype(np.float32))


def fit_classifiers(kb: KnowledgeBase, keys: list[Key], vectors: np.ndarray,
                    config: FitConfig = FitConfig()) -> Classifiers | None:
    """Topic and scope models from the keys' vectors (phrasings and titles in, off-topic questions out);
    None for a knowledge base too small to learn from (one topic, or nothing to decline): the assistant
    then ranks and declines without them."""
    topic_of = {e.id: e.topic for e in kb.entries}
    phrasing = np.array([k.kind is KeyKind.QUESTION for k in keys])
    off_topic = np.array([k.kind is KeyKind.OFF_TOPIC for k in keys])
    labels = [topic_of[k.entry_id] for k in keys if k.kind is KeyKind.QUESTION]
    if len(set(labels)) < 2 or not off_topic.any():
        return None
    topic = _fit(vectors[phrasing], labels, config.topic_c, config.max_iter)
    rows = phrasing | off_topic
    scope = _fit(vectors[rows], np.where(phrasing[rows], "in", "out"), config.scope_c, config.max_iter,
                 balanced=True)
    return Classifiers(topic=topic, scope=scope)
