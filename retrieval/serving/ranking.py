"""Ranking: score every entry against a question, dense and lexical, pooled by topic, then fused."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

import bm25s
import numpy as np

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.chunks import Key, KeyKind
from retrieval.serving.embedder import Embedder
from retrieval.serving.index import SearchIndex
from retrieval.serving.text import words


class Fusion(StrEnum):
    LINEAR = "linear"  # add the signals with weights
    RRF = "rrf"        # fuse their ranks (reciprocal rank fusion)


@dataclass(frozen=True)
class RankingConfig:
    """How the signals are combined; the defaults are what the development set supported (see README)."""

    method: Fusion = Fusion.LINEAR
    weight_own: float = 1.0       # the entry's own phrasings
    weight_topic: float = 2.0     # every provider's phrasings on the entry's topic
    weight_answers: float = 1.0   # the entry's answer text
    weight_lexical: float = 0.05  # BM25 over jieba words, scaled to the best entry
    topic_pool: int = 3           # how many of a topic's best phrasings speak for it
    rrf_k: float = 10.0

    def __post_init__(self) -> None:
        if self.method not in tuple(Fusion):
            raise ValueError(f"method must be 'linear' or 'rrf', got {self.method!r}")
        object.__setattr__(self, "method", Fusion(self.method))
        if self.topic_pool < 1:
            raise ValueError(f"topic_pool must be at least 1, got {self.topic_pool}")


@dataclass(frozen=True)
class Candidate:
    """One entry's scores for one question."""

    entry_id: str
    provider: str
    topic: str
    fused: float       # the signals combined: what the ranker orders by
    similarity: float  # best cosine between the question and the entry's phrasings and title
    answer: float      # cosine between the question and the entry's answer
    lexical: float     # BM25 over the entry's phrasings and title


@dataclass(frozen=True)
class Ranking:
    candidates: list[Candidate]  # every entry, best first
    off_topic: float             # best cosine with a question the assistant declines
    small_talk: tuple[str, float] = ("", -1.0)  # the nearest small-talk intent and its cosine

    @property
    def best_similarity(self) -> float:
        """The best cosine between the question and any entry's phrasing."""
        return max(c.similarity for c in self.candidates)


class LexicalIndex:
    """BM25 over each entry's phrasings and title (provider names taken out), both languages, jieba words."""

    def __init__(self, kb: KnowledgeBase, keys: list[Key]):
        text: dict[str, list[str]] = {e.id: [] for e in kb.entries}
        for key in keys:
            if key.kind is KeyKind.QUESTION:
                text[key.entry_id].append(key.text)
        docs = [words(" ".join(text[e.id])) for e in kb.entries]
        self.bm25 = bm25s.BM25()
        self.bm25.index(docs, show_progress=False)
        self.vocabulary = set(self.bm25.vocab_dict)

    def scores(self, question: str) -> np.ndarray:
        query = [w for w in words(question) if w in self.vocabulary]
        if not query:
            return np.zeros(self.bm25.scores["num_docs"], dtype=np.float32)
        return np.asarray(self.bm25.get_scores(query), dtype=np.float32)


class Vocabulary:
    """Every word the knowledge base uses anywhere, to tell how much of a question it speaks about."""

    def __init__(self, kb: KnowledgeBase):
        texts = [" ".join(p.aliases) for p in kb.providers.values()]
        for e in kb.entries:
            for lang in e.answer:
                steps = [f"{s.do} {s.expect} {s.if_not}" for s in e.steps.get(lang, ())]
                texts.append(" ".join([*e.questions[lang], e.title[lang], e.answer[lang], *steps]))
        self.counts = Counter(words(" ".join(texts)))  # how often each word is used: the speller's candidates
        self.words = set(self.counts)

    def coverage(self, question: str) -> float:
        """The share of the question's words the knowledge base knows; 1.0 for a question with none."""
        found = words(question)
        return sum(w in self.words for w in found) / len(found) if found else 1.0


def ranks(scores: np.ndarray) -> np.ndarray:
    """1 for the best score, 2 for the next, ...; equal scores in their order.

    >>> ranks(np.array([0.2, 0.9, 0.2])).tolist()
    [2.0, 1.0, 3.0]
    """
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.float32)
    out[order] = np.arange(1, len(scores) + 1)
    return out


class Ranker:
    """Scores all entries for a question; decisions about them are made elsewhere."""

    def __init__(self, kb: KnowledgeBase, index: SearchIndex, embedder: Embedder,
                 config: RankingConfig = RankingConfig()):
        self.kb, self.index, self.embedder, self.config = kb, index, embedder, config
        self.entries = list(kb.entries)
        position = {e.id: i for i, e in enumerate(self.entries)}
        missing = {k.entry_id for k in index.keys if k.kind in (KeyKind.QUESTION, KeyKind.ANSWER)} - set(position)
        if missing:
            raise ValueError(f"the index names entries the knowledge base lacks: {sorted(missing)[:5]}")
        kinds = np.array([k.kind for k in index.keys])
        self.is_phrasing, self.is_answer = kinds == KeyKind.QUESTION, kinds == KeyKind.ANSWER
        self.is_off_topic, self.is_small_talk = kinds == KeyKind.OFF_TOPIC, kinds == KeyKind.SMALL_TALK
        self.small_talk_intent = np.array([k.entry_id for k in index.keys])
        self.key_entry = np.array([position.get(k.entry_id, -1) if k.kind in (KeyKind.QUESTION, KeyKind.ANSWER)
                                   else -1 for k in index.keys], dtype=np.int64)
        self.lexical = LexicalIndex(kb, index.keys)
        topics = list(kb.topics)
        self.entry_topic = np.array([topics.index(e.topic) for e in self.entries], dtype=np.int64)
        key_topic = np.where(self.key_entry >= 0, self.entry_topic[self.key_entry], -1)
        self.topic_keys = [np.flatnonzero((key_topic == t) & self.is_phrasing) for t in range(len(topics))]

    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine between the question's vector and every key."""
        return self.index.vectors.all_scores(vector)

    def dense_scores(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per entry: best cosine over its phrasings, cosine with its answer, its topic's pooled cosine."""
        n = len(self.entries)
        dense = np.full(n, -1.0, dtype=np.float32)
        answer = np.full(n, -1.0, dtype=np.float32)
        np.maximum.at(dense, self.key_entry[self.is_phrasing], sims[self.is_phrasing])
        np.maximum.at(answer, self.key_entry[self.is_answer], sims[self.is_answer])
        pool = self.config.topic_pool
        per_topic = np.array([np.sort(sims[k])[-pool:].mean() if len(k) else -1.0 for k in self.topic_keys],
                             dtype=np.float32)
        return dense, answer, per_topic[self.entry_topic]

    def fuse(self, dense: np.ndarray, answer: np.ndarray, topic: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        c = self.config
        if c.method is Fusion.RRF:
            fused = (c.weight_own / (c.rrf_k + ranks(dense)) + c.weight_topic / (c.rrf_k + ranks(topic))
                     + c.weight_answers / (c.rrf_k + ranks(answer)))
            if lexical.any():  # an all-zero list carries no ranking
                fused = fused + c.weight_lexical / (c.rrf_k + ranks(lexical)) * (lexical > 0)
            return fused
        top = lexical.max()
        scaled = lexical / top if top > 0 else lexical
        return c.weight_own * dense + c.weight_topic * topic + c.weight_answers * answer + c.weight_lexical * scaled

    def rank(self, question: str, vector: np.ndarray | None = None) -> Ranking:
        """Every entry, best first. `question` is the text to match (provider names out, vocabulary
        canonical); `vector` its embedding, when the caller has it already."""
        if vector is None:
            vector = self.embedder.embed_queries([question])[0]
        sims = self.similarities(vector)
        dense, answer, topic = self.dense_scores(sims)
        lexical = self.lexical.scores(question)
        fused = self.fuse(dense, answer, topic, lexical)
        order = np.argsort(-fused, kind="stable")
        off_topic = float(sims[self.is_off_topic].max()) if self.is_off_topic.any() else -1.0
        small_talk = ("", -1.0)
        if self.is_small_talk.any():
            best = int(np.flatnonzero(self.is_small_talk)[np.argmax(sims[self.is_small_talk])])
            small_talk = (str(self.small_talk_intent[best]), float(sims[best]))
        return Ranking([Candidate(self.entries[i].id, self.entries[i].provider, self.entries[i].topic,
                                  float(fused[i]), float(dense[i]), float(answer[i]), float(lexical[i]))
                        for i in order], off_topic, small_talk)
