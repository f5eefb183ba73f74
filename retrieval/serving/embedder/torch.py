"""The torch backend: a sentence-transformers model as it comes, with its `query`/`passage` prompts."""

from __future__ import annotations

import os

import numpy as np

from retrieval.serving.embedder.base import loading, no_vectors


class TorchEmbedder:
    """Any sentence-transformers model, through sentence-transformers and torch on the CPU.

    Slower to start and to answer than the OpenVINO backend, but it runs every model layout; the
    OpenVINO export is made from it, and the tests check the two give the same vectors.
    """

    backend = "torch"

    def __init__(self, path: str, name: str | None = None, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = name or path
        self.batch_size = batch_size
        with loading(path, self.backend):
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(path, device="cpu", backend="torch", local_files_only=True)
            self.dim = int(self.model.get_embedding_dimension())
            prompts = getattr(self.model, "prompts", {}) or {}
            self._query_prompt = "query" if "query" in prompts else None
            self._passage_prompt = "passage" if "passage" in prompts else None
            self.embed_queries(["warm up", "预热"])  # the first calls are much slower than the rest

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return no_vectors(self.dim)
        vectors = self.model.encode(list(texts), prompt_name=prompt_name, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)
