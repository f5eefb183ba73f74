"""Ranking: score every entry against a question, dense and lexical, fused by rank."""

from __future__ import annotations

from dataclasses import dataclass

import bm25s
import numpy as np

from .embedder import Embedder
from .index import SearchIndex
from .knowledge import KnowledgeBase
from .text import words


@dataclass(frozen=True)
class RankingConfig:
    """How the lists are fused; the defaults are what the development set supported (see README)."""

    rrf_k: float = 10.0
    weight_questions: float = 1.0
    weight_answers: float = 0.5
    weight_lexical: float = 0.7


@dataclass(frozen=True)
class Candidate:
    """One entry's scores for one question."""

    entry_id: str
    provider: str
    topic: str
    fused: float
    dense: float     # best cosine between the question and the entry's phrasings and title
    answer: float    # cosine between the question and the entry's answer
    lexical: float   # BM25 over the entry's phrasings and title


class LexicalIndex:
    """BM25 over each entry's phrasings and title, in both languages, with jieba words."""

    def __init__(self, kb: KnowledgeBase):
        docs = [words(" ".join([*e.questions["zh"], *e.questions["en"], e.title["zh"], e.title["en"]]))
                for e in kb.entries]
        self.bm25 = bm25s.BM25()
        self.bm25.index(docs, show_progress=False)
        self.vocabulary = set(self.bm25.vocab_dict)

    def scores(self, question: str) -> np.ndarray:
        query = [w for w in words(question) if w in self.vocabulary]
        if not query:
            return np.zeros(self.bm25.scores["num_docs"], dtype=np.float32)
        return np.asarray(self.bm25.get_scores(query), dtype=np.float32)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 for the best score, 2 for the next, ..."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


class Ranker:
    """Scores all entries for a question; decisions about them are made elsewhere."""

    def __init__(self, kb: KnowledgeBase, index: SearchIndex, embedder: Embedder,
                 config: RankingConfig = RankingConfig()):
        self.kb, self.index, self.embedder, self.config = kb, index, embedder, config
        self.entries = list(kb.entries)
        position = {e.id: i for i, e in enumerate(self.entries)}
        missing = {k.entry_id for k in index.keys} - set(position)
        if missing:
            raise ValueError(f"the index names entries the knowledge base lacks: {sorted(missing)[:5]}")
        self.key_entry = np.array([position[k.entry_id] for k in index.keys], dtype=np.int64)
        self.key_is_answer = np.array([k.kind == "answer" for k in index.keys])
        self.lexical = LexicalIndex(kb)

    def dense_scores(self, question: str) -> tuple[np.ndarray, np.ndarray]:
        """Per entry: best cosine over its phrasings/titles, and cosine with its answer."""
        vector = self.embedder.embed_queries([question])
        hits = self.index.vectors.search(vector, self.index.vectors.size)[0]
        ids = np.fromiter((i for i, _ in hits), dtype=np.int64, count=len(hits))
        sims = np.fromiter((s for _, s in hits), dtype=np.float32, count=len(hits))
        n = len(self.entries)
        dense = np.full(n, -1.0, dtype=np.float32)
        answer = np.full(n, -1.0, dtype=np.float32)
        is_answer = self.key_is_answer[ids]
        np.maximum.at(dense, self.key_entry[ids[~is_answer]], sims[~is_answer])
        np.maximum.at(answer, self.key_entry[ids[is_answer]], sims[is_answer])
        return dense, answer

    def rank(self, question: str) -> list[Candidate]:
        """Every entry, best first."""
        c = self.config
        dense, answer = self.dense_scores(question)
        lexical = self.lexical.scores(question)
        fused = (c.weight_questions / (c.rrf_k + _ranks(dense))
                 + c.weight_answers / (c.rrf_k + _ranks(answer)))
        if lexical.any():  # an all-zero list carries no ranking
            fused = fused + c.weight_lexical / (c.rrf_k + _ranks(lexical)) * (lexical > 0)
        order = np.argsort(-fused, kind="stable")
        return [Candidate(self.entries[i].id, self.entries[i].provider, self.entries[i].topic,
                          float(fused[i]), float(dense[i]), float(answer[i]), float(lexical[i]))
                for i in order]
