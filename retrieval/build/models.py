"""Fitting the classifiers the assistant consults, from the index's own vectors (no extra embedding).

The topic model learns every phrasing of every entry, provider names taken out, labelled only by its
topic: pooled over all providers, thousands of examples for sixteen-odd topics, so "怎么交话费" learns
from how people ask about topping up anywhere; it also learns knowledge/topic_examples.yaml, questions
written by other hands in the words people use, labelled with their topic only (a second topic model,
fitted on the phrasings alone, is what the decline rule reads: one that has learned how people talk about
each topic is sure of a topic for questions near the line as well). A word topic model learns the same
texts as TF-IDF of their words: it hears "交话费" or "月租" in a long story the embedding averages away.
The scope models learn the same phrasings against the questions we decline (knowledge/out_of_scope.yaml,
many of them near the line), by vector and by words, some of both told inside a life (a visa, a move: the
stories of knowledge/conversation.yaml), so that a question asked in passing in a long post is still ours.
All are plain logistic regressions: deterministic, seconds to fit, a matrix product to apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.chunks import Key, KeyKind
from retrieval.serving.classifier import Classifiers, LinearClassifier, WordModel, terms_of


@dataclass(frozen=True)
class FitConfig:
    """How the classifiers are fitted: regularisation (larger C: fit the phrasings more closely), context
    augmentation and the topic examples' weight; chosen on the dev set."""

    topic_c: float = 16.0
    word_topic_c: float = 16.0
    scope_c: float = 16.0
    words_c: float = 16.0
    max_iter: int = 3000
    # Every n-th phrasing and question we decline is also learned with context around it (sentences from
    # knowledge/conversation.yaml), so a long post is judged by what it asks (0: no augmentation)...
    augment_every: int = 3
    # ...a phrasing with 1 to this many sentences (real posts in scope tell a story before they ask; with
    # only short phrasings in scope, length alone would read as out of scope), a question we decline with
    # 1 to this many (those are mostly real posts already).
    context_in: int = 3
    context_out: int = 1
    # How many times the topic model counts each of knowledge/topic_examples.yaml's questions (0: not at all):
    # written by other hands than the phrasings, they teach it how people put each topic in their own words.
    example_weight: int = 3

    def __post_init__(self) -> None:
        if self.example_weight < 0:
            raise ValueError(f"example_weight must not be negative, got {self.example_weight}")
        if min(self.context_in, self.context_out) < 1:
            raise ValueError(f"context_in and context_out must be at least 1, got {self.context_in}, "
                             f"{self.context_out}")
        if min(self.topic_c, self.scope_c, self.words_c, self.word_topic_c) <= 0:
            raise ValueError(f"C must be positive, got topic_c={self.topic_c}, scope_c={self.scope_c}, "
                             f"words_c={self.words_c}, word_topic_c={self.word_topic_c}")


def _fit(x: np.ndarray, y: Sequence[str], c: float, max_iter: int, balanced: bool = False,
         dtype=np.float32) -> LinearClassifier:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced" if balanced else None)
    model.fit(x, np.asarray(y))
    return LinearClassifier(tuple(str(k) for k in model.classes_), model.coef_.astype(dtype),
                            model.intercept_.astype(dtype))


def with_context(kb: KnowledgeBase, keys: list[Key], config: FitConfig,
                 pool: dict[str, tuple[str, ...]] | None = None) -> list[Key]:
    """Every `config.augment_every`-th phrasing and declined question again, with context sentences before
    and after it: deterministic (the n-th key, the sentences chosen by position), in the key's own language.

    The n-th augmented key gets 1 + n % most sentences (most: context_in for a phrasing, context_out for a
    question we decline), spread over several places in the pool, half of them before the question.
    `pool`: the sentences by language (default knowledge/conversation.yaml's `context`)."""
    pool = kb.conversation.context if pool is None else pool
    out = []
    chosen = [k for k in keys if k.kind in (KeyKind.QUESTION, KeyKind.OFF_TOPIC)]
    every = config.augment_every
    for i, key in enumerate(chosen):
        context = pool.get(key.language, ())
        if not every or i % every or not context:
            continue
        n = i // every
        count = 1 + n % (config.context_in if key.kind is KeyKind.QUESTION else config.context_out)
        sentences = [context[(7 * n + 13 * m) % len(context)] for m in range(count)]
        before = sentences[:(count + n % 2) // 2]
        text = " ".join([*before, key.text, *sentences[len(before):]])
        out.append(Key(key.entry_id, key.kind, key.language, text))
    return out


def topic_example_texts(kb: KnowledgeBase) -> list[tuple[str, str]]:
    """knowledge/topic_examples.yaml's questions as the assistant reads a question (misspellings read,
    provider names out, the vocabulary's words canonical), each with its topic."""
    from retrieval.serving.ranking import Vocabulary
    from retrieval.serving.understand import Reader

    reader = Reader(kb, Vocabulary(kb).counts, max_chars=10_000)
    return [(reader.read(text).matched, topic) for text, _provider, topic in kb.topic_examples]


def fit_classifiers(kb: KnowledgeBase, keys: list[Key], vectors: np.ndarray,
                    config: FitConfig = FitConfig(), embed=None) -> Classifiers | None:
    """Topic and scope models from the keys' vectors (phrasings and titles in, off-topic questions out);
    None for a knowledge base too small to learn from (one topic, or nothing to decline): the assistant
    then ranks and declines without them."""
    topic_of = {e.id: e.topic for e in kb.entries}
    # the word topic model learns the phrasings as written: context sentences are words of no topic
    own = [(k.text, topic_of[k.entry_id]) for k in keys if k.kind is KeyKind.QUESTION]
    written = keys  # before any sentence is told around them
    extra = with_context(kb, keys, config) if embed is not None else []
    if extra:
        keys, vectors = [*keys, *extra], np.vstack([vectors, embed([k.text for k in extra])])
    phrasing, off_topic = _of_kind(keys, KeyKind.QUESTION), _of_kind(keys, KeyKind.OFF_TOPIC)
    labels = [topic_of[k.entry_id] for k in keys if k.kind is KeyKind.QUESTION]
    if len(set(labels)) < 2 or not off_topic.any():
        return None
    phrasings_only = _fit(vectors[phrasing], labels, config.topic_c, config.max_iter)
    topic = phrasings_only
    examples = []  # each as many times as the topic models count it
    if kb.topic_examples and config.example_weight:
        once = [(text, t) for text, t in topic_example_texts(kb) if t in kb.topics]
        examples = once * config.example_weight
        if embed is not None:
            x = np.vstack([vectors[phrasing], *[embed([text for text, _ in once])] * config.example_weight])
            topic = _fit(x, labels + [t for _, t in examples], config.topic_c, config.max_iter)
    # the scope models also learn phrasings and declined questions told inside a life (conversation.yaml's
    # `stories`: a visa, a move, a new job), so that a question of ours asked in passing is not declined for its
    # story; the topic models do not, the story names no topic
    lives = with_context(kb, written, config, kb.conversation.stories) if embed is not None else []
    if lives:
        keys, vectors = [*keys, *lives], np.vstack([vectors, embed([k.text for k in lives])])
        phrasing, off_topic = _of_kind(keys, KeyKind.QUESTION), _of_kind(keys, KeyKind.OFF_TOPIC)
    rows = phrasing | off_topic
    scope = _fit(vectors[rows], np.where(phrasing[rows], "in", "out"), config.scope_c, config.max_iter,
                 balanced=True)
    scoped = [k.text for k, r in zip(keys, rows, strict=True) if r]
    return Classifiers(topic=topic, scope=scope,
                       words=_fit_words(scoped, np.where(phrasing[rows], "in", "out"), config.words_c, config,
                                        balanced=True),
                       decline_topic=phrasings_only,
                       word_topic=_fit_words([text for text, _ in own + examples],
                                             [t for _, t in own + examples], config.word_topic_c, config))


def _of_kind(keys: list[Key], kind: KeyKind) -> np.ndarray:
    """Which of `keys` are of `kind`, as a boolean mask."""
    return np.array([k.kind is kind for k in keys])


def _fit_words(texts: list[str], labels, c: float, config: FitConfig, balanced: bool = False) -> WordModel:
    """TF-IDF of jieba words and word pairs, then a logistic regression over them."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=terms_of, sublinear_tf=True)
    x = vectorizer.fit_transform(texts)
    return WordModel(tuple(vectorizer.get_feature_names_out()), vectorizer.idf_.astype(np.float64),
                     _fit(x, labels, c, config.max_iter, balanced=balanced, dtype=np.float64))
