"""Index: FAISS vectors of the knowledge base's keys, saved atomically with a manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from .chunks import Chunk, Key, make_chunks, make_keys
from .embedder import Embedder
from .knowledge import KnowledgeBase

FORMAT = 3  # 2: phrasings stored without provider names; 3: off-topic questions
CURRENT = "CURRENT"
PREFIX = "idx-"          # a finished index folder
BUILDING = ".building-"  # a folder being written
FILES = ("index.faiss", "meta.json")
# Above this many vectors an exact search costs more than it is worth: on 2 cores its p50 passes 2 ms
# at about 15-19k vectors of 384 dims (0.6 ms at 10k, 15 ms at 100k), while HNSW answers in 0.1-0.3 ms
# with recall@10 of 0.998-1.0 there. See `python -m retrieval bench`'s index-scaling table.
EXACT_LIMIT = 20_000

Progress = Callable[[str], None]


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


class VectorIndex:
    """Inner-product search over L2-normalised vectors: exact (flat) or approximate (HNSW)."""

    def __init__(self, index: faiss.Index):
        self.index = index

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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embed_keys(keys: list[Key], embedder: Embedder, progress: Progress | None = None,
               batch: int = 64) -> np.ndarray:
    """Questions and titles are embedded as queries (symmetric matching), answers as passages."""
    out = np.zeros((len(keys), embedder.dim), dtype=np.float32)
    for start in range(0, len(keys), batch):
        part = keys[start:start + batch]
        for is_answer in (False, True):
            rows = [i for i, key in enumerate(part) if (key.kind == "answer") == is_answer]
            if rows:
                texts = [part[i].text for i in rows]
                embed = embedder.embed_passages if is_answer else embedder.embed_queries
                out[[start + i for i in rows]] = embed(texts)
        if progress:
            progress(f"embedding the knowledge base: {min(start + batch, len(keys))}/{len(keys)}")
    return out


def build_index(kb: KnowledgeBase, embedder: Embedder, progress: Progress | None = None) -> SearchIndex:
    keys, chunks = make_keys(kb), make_chunks(kb)
    vectors = VectorIndex.build(embed_keys(keys, embedder, progress))
    manifest = Manifest(FORMAT, embedder.name, embedder.dim, kb.digest, len(keys), len(chunks), {},
                        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    return SearchIndex(manifest, vectors, keys, chunks)


def _write(index: SearchIndex, folder: Path) -> Manifest:
    # Through Python, not faiss.write_index: that raises RuntimeError, not OSError, when the disk is full,
    # and when the failure only shows at close it prints to stderr and returns as if it had worked.
    with open(folder / "index.faiss", "wb") as f:
        f.write(faiss.serialize_index(index.vectors.index).tobytes())
    meta = {"keys": [asdict(k) for k in index.keys], "chunks": [c.to_json() for c in index.chunks]}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    manifest = Manifest(**{**asdict(index.manifest), "files": {n: _sha256(folder / n) for n in FILES}})
    (folder / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
    for name in (*FILES, "manifest.json"):
        with open(folder / name, "rb") as f:
            os.fsync(f.fileno())
    return manifest


def save_index(index: SearchIndex, directory: Path) -> Path:
    """Write the index into a new folder, then switch CURRENT to it in one atomic rename."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=BUILDING, dir=directory))
        try:
            index.manifest = _write(index, staging)
            final = directory / f"{PREFIX}{index.manifest.knowledge_digest[:12]}-{staging.name.rsplit('-', 1)[-1]}"
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pointer = directory / f".{CURRENT}.tmp"
        try:
            pointer.write_text(final.name, encoding="utf-8")
            os.replace(pointer, directory / CURRENT)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)  # a whole unused copy, on a disk that may be full
            pointer.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise IndexStoreError(f"could not save the index in {directory}: {exc.strerror or exc}; "
                              "the previous index was left as it was. Free some disk space or "
                              "make the folder writable (ASSISTANT_DATA_DIR), then try again.") from exc
    _remove_old(directory, keep=final.name)
    return final


def _remove_old(directory: Path, keep: str) -> None:
    """Earlier indexes and builds that died half-way; nothing else in the folder is touched."""
    for child in directory.iterdir():
        if child.is_dir() and child.name != keep and child.name.startswith((PREFIX, BUILDING)):
            shutil.rmtree(child, ignore_errors=True)


def load_index(directory: Path) -> SearchIndex:
    """Read the current index, checking every file against the manifest's hashes."""
    directory = Path(directory)
    try:
        folder = directory / (directory / CURRENT).read_text(encoding="utf-8").strip()
        manifest = Manifest(**json.loads((folder / "manifest.json").read_text(encoding="utf-8")))
        for name in FILES:
            if _sha256(folder / name) != manifest.files.get(name):
                raise IndexStoreError(f"{folder / name} does not match its manifest (damaged)")
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        vectors = VectorIndex(faiss.read_index(str(folder / "index.faiss")))
        keys = [Key(**k) for k in meta["keys"]]
        chunks = [Chunk.from_json(c) for c in meta["chunks"]]
    except IndexStoreError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexStoreError(f"no usable index in {directory}: {exc}") from exc
    if vectors.size != len(keys) or manifest.keys != len(keys) or manifest.chunks != len(chunks):
        raise IndexStoreError(f"the index in {folder} is inconsistent with its manifest")
    return SearchIndex(manifest, vectors, keys, chunks)


def stale_reason(index: SearchIndex, kb: KnowledgeBase, embedder: Embedder) -> str | None:
    m = index.manifest
    if m.format != FORMAT:
        return f"index format {m.format} is not {FORMAT}"
    if m.model != embedder.name or m.dim != embedder.dim:
        return f"the model changed ({m.model} -> {embedder.name})"
    if m.knowledge_digest != kb.digest:
        return "the knowledge base changed"
    return None


def load_or_build(kb: KnowledgeBase, embedder: Embedder, directory: Path,
                  progress: Progress | None = None) -> SearchIndex:
    """Serve the saved index if it is intact and current; otherwise rebuild and save it."""
    say = progress or (lambda _msg: None)
    try:
        index = load_index(directory)
        reason = stale_reason(index, kb, embedder)
        if reason is None:
            return index
        say(f"rebuilding the index: {reason}")
    except IndexStoreError as exc:
        say(f"building the index: {exc}")
    index = build_index(kb, embedder, progress)
    save_index(index, directory)
    return index
