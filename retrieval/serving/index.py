"""Index: the FAISS vectors of the knowledge base's keys, and reading a saved index back, checked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from retrieval.serving.chunks import Chunk, Key
from retrieval.serving.classifier import Classifiers

# 2: phrasings stored without provider names; 3: off-topic questions; 4: chunks keep source_date;
# 5: vocabulary, small talk, classifiers; 6: the vocabulary's canonical words kept whole in phrasings;
# 7: classifiers fitted with one to three context sentences around phrasings; 8: topic examples, and a
# second topic model (phrasings only) for the decline rule; 9: a word topic model; 10: Cantonese read as
# Mandarin (text.normalise), in phrasings and examples as in questions
FORMAT = 10
CURRENT = "CURRENT"
PREFIX = "idx-"          # a finished index folder
BUILDING = ".building-"  # a folder being written
FILES = ("index.faiss", "meta.json")
# Up to this many vectors the index is exact (nothing to build, nothing missed); above it, HNSW. In the
# README's bench (2 cores) exact search passes 2 ms at about 14,000 vectors of 384 dims (0.75 ms at 10k,
# 14.5 ms at 100k) while HNSW answers in 0.2-0.5 ms with recall@10 of 0.999-1.0 there; the knowledge base
# is about 7,000. `python -m retrieval bench` measures it again (its index-scaling table).
EXACT_LIMIT = 20_000


class IndexStoreError(Exception):
    """The index could not be read or written; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    format: int
    model: str
    dim: int
    knowledge_digest: str
    keys: int
    chunks: int
    files: dict[str, str]
    built_at: str
    text_digest: str = ""  # text.tables_digest() when built ("" for an index built before it was kept)


class VectorIndex:
    """Inner-product search over L2-normalised vectors: exact (flat) or approximate (HNSW)."""

    # An approximate index scores only this many nearest vectors for `all_scores`; the rest read as -1.
    APPROXIMATE_POOL = 2000

    def __init__(self, index: faiss.Index):
        self.index = index
        self._matrix: np.ndarray | None = None  # the vectors of an exact index, read once for all_scores

    @classmethod
    def build(cls, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise ValueError(f"vectors must be a 2-D array with at least one column, got shape {vectors.shape}")
        dim = vectors.shape[1]
        if len(vectors) > exact_limit:
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 256  # recall@10 0.977 at 1M clustered vectors, p50 0.9 ms (128: 0.948)
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return cls(index)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def all_scores(self, query: np.ndarray) -> np.ndarray:
        """The inner product of one query with every stored vector, by id: one matrix product for an exact
        index (the ranker scores every key); for an approximate one, its nearest APPROXIMATE_POOL, -1 elsewhere.

        >>> v = VectorIndex.build(np.eye(3, dtype=np.float32))
        >>> v.all_scores(np.array([0.0, 1.0, 0.0])).tolist()
        [0.0, 1.0, 0.0]
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"query dimension {query.shape[0]} does not match the index ({self.dim})")
        if isinstance(self.index, faiss.IndexFlat):
            if self._matrix is None:
                self._matrix = self.index.reconstruct_n(0, self.size)
            # einsum, not `@`: a matrix-vector product this size is quicker on one core than on BLAS's thread
            # pool, which contends with the model's threads and with other questions answered at once.
            return np.einsum("ij,j->i", self._matrix, query)
        scores = np.full(self.size, -1.0, dtype=np.float32)
        for i, s in self.search(query, self.APPROXIMATE_POOL)[0]:
            scores[i] = s
        return scores

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (id, score) per query, best first; k is clamped to the index size, -1 padding dropped."""
        if self.size == 0:
            raise ValueError("cannot search an empty index")
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dimension {queries.shape[1]} does not match the index ({self.dim})")
        k = max(1, min(int(k), self.size))
        scores, ids = self.index.search(queries, k)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)]


@dataclass
class SearchIndex:
    """Everything a search needs: vectors, the key behind each vector, and the chunks to show."""

    manifest: Manifest
    vectors: VectorIndex
    keys: list[Key]
    chunks: list[Chunk]
    classifiers: Classifiers | None = None  # None for a knowledge base too small to fit them
    unsaved: str | None = None  # why this index lives only in memory (its save failed), else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_index(directory: Path) -> SearchIndex:
    """Read the current index, checking every file against the manifest's hashes."""
    directory = Path(directory)
    try:
        folder = directory / (directory / CURRENT).read_text(encoding="utf-8").strip()
        manifest = Manifest(**json.loads((folder / "manifest.json").read_text(encoding="utf-8")))
        for name in manifest_files(manifest):
            if _sha256(folder / name) != manifest.files.get(name):
                raise IndexStoreError(f"{folder / name} does not match its manifest (damaged)")
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        vectors = VectorIndex(faiss.read_index(str(folder / "index.faiss")))
        keys = [Key(**k) for k in meta["keys"]]
        chunks = [Chunk.from_json(c) for c in meta["chunks"]]
        classifiers = Classifiers.load(folder) if manifest.files.get(Classifiers.FILE) else None
    except IndexStoreError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexStoreError(f"no usable index in {directory}: {exc}") from exc
    if vectors.size != len(keys) or manifest.keys != len(keys) or manifest.chunks != len(chunks):
        raise IndexStoreError(f"the index in {folder} is inconsistent with its manifest")
    return SearchIndex(manifest, vectors, keys, chunks, classifiers)


def manifest_files(manifest: Manifest) -> tuple[str, ...]:
    """The files an index folder must hold: always FILES, and the classifiers when they were fitted."""
    return (*FILES, *(name for name in manifest.files if name not in FILES)) if manifest.files else FILES
