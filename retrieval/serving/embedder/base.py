"""What every embedder is: the `Embedder` interface, its one error, and the deterministic fake for tests."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out (so an inner product is a cosine)."""

    name: str
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


class ModelError(Exception):
    """The embedding model could not be prepared or loaded."""


class ModelLoadError(ModelError):
    """The model's files were there but could not be read: damaged, cut short, or not a model."""


@contextmanager
def loading(path: object, backend: str) -> Iterator[None]:
    """The model libraries raise many kinds of exception; the user needs one message that names the model."""
    try:
        yield
    except ModelError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load the embedding model {str(path)!r} ({backend}): {exc}") from exc


def no_vectors(dim: int) -> np.ndarray:
    """What embedding no texts gives: zero rows, never an error."""
    return np.zeros((0, dim), dtype=np.float32)


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
        from retrieval.serving.text import normalise, words

        v = np.zeros(self.dim, dtype=np.float32)
        compact = normalise(text).replace(" ", "")
        features = words(text) + [compact[i:i + 2] for i in range(len(compact) - 1)]
        for feature in features:
            h = zlib.crc32(feature.encode("utf-8"))
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else no_vectors(self.dim)

    embed_passages = embed_queries
