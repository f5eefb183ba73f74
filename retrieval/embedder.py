"""Embedders: turn texts into normalised vectors (sentence-transformers, or a fake for tests)."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


class ModelError(Exception):
    """The embedding model could not be prepared or loaded."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model, using its `query`/`passage` prompts when it has them."""

    def __init__(self, path: str, name: str | None = None, backend: str = "torch", batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(path, device="cpu", backend=backend, local_files_only=True)
        except Exception as exc:  # the library raises many kinds; the user needs one message
            raise ModelError(f"cannot load the embedding model {path!r}: {exc}") from exc
        self.name = name or path
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        prompts = getattr(self.model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else None
        self.embed_queries(["warm up", "预热"])  # the first calls are much slower than the rest

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), prompt_name=prompt_name, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)


class HashingEmbedder:
    """A deterministic, offline stand-in for a real model: hashed words and character pairs.

    Texts sharing words get similar vectors, so retrieval tests are exact and need no model.

    >>> e = HashingEmbedder(dim=64)
    >>> float(e.embed_queries(["top up"]) @ e.embed_queries(["top up"]).T) > 0.99
    True
    """

    name = "hashing"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        import zlib

        from .text import normalise, words

        v = np.zeros(self.dim, dtype=np.float32)
        compact = normalise(text).replace(" ", "")
        features = words(text) + [compact[i:i + 2] for i in range(len(compact) - 1)]
        for feature in features:
            h = zlib.crc32(feature.encode("utf-8"))
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    embed_passages = embed_queries
