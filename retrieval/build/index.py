"""Building the index: embed every key, then save it atomically with a manifest; rebuild when stale."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import faiss
import numpy as np

from retrieval.build.models import FitConfig, fit_classifiers
from retrieval.knowledge import KnowledgeBase
from retrieval.serving.chunks import Key, KeyKind, make_chunks, make_keys
from retrieval.serving.classifier import Classifiers
from retrieval.serving.embedder import Embedder
from retrieval.serving.index import (
    BUILDING,
    CURRENT,
    FILES,
    FORMAT,
    PREFIX,
    IndexStoreError,
    Manifest,
    SearchIndex,
    VectorIndex,
    _sha256,
    load_index,
)
from retrieval.serving.text import tables_digest

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


def embed_keys(keys: list[Key], embedder: Embedder, progress: Progress | None = None,
               batch: int = 64) -> np.ndarray:
    """Questions and titles are embedded as queries (symmetric matching), answers as passages."""
    out = np.zeros((len(keys), embedder.dim), dtype=np.float32)
    for start in range(0, len(keys), batch):
        part = keys[start:start + batch]
        for is_answer in (False, True):
            rows = [i for i, key in enumerate(part) if (key.kind is KeyKind.ANSWER) == is_answer]
            if rows:
                texts = [part[i].text for i in rows]
                embed = embedder.embed_passages if is_answer else embedder.embed_queries
                out[[start + i for i in rows]] = embed(texts)
        if progress:
            progress(f"embedding the knowledge base: {min(start + batch, len(keys))}/{len(keys)}")
    return out


def build_index(kb: KnowledgeBase, embedder: Embedder, progress: Progress | None = None,
                fit: FitConfig = FitConfig()) -> SearchIndex:
    keys, chunks = make_keys(kb), make_chunks(kb)
    embedded = embed_keys(keys, embedder, progress)
    if progress:
        progress("fitting the topic and scope classifiers")
    classifiers = fit_classifiers(kb, keys, embedded, fit, embed=embedder.embed_queries)
    manifest = Manifest(FORMAT, embedder.name, embedder.dim, kb.digest, len(keys), len(chunks), {},
                        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), tables_digest())
    return SearchIndex(manifest, VectorIndex.build(embedded), keys, chunks, classifiers)


def _write(index: SearchIndex, folder: Path) -> Manifest:
    # Through Python, not faiss.write_index: that raises RuntimeError, not OSError, when the disk is full,
    # and when the failure only shows at close it prints to stderr and returns as if it had worked.
    with open(folder / "index.faiss", "wb") as f:
        f.write(faiss.serialize_index(index.vectors.index).tobytes())
    meta = {"keys": [asdict(k) for k in index.keys], "chunks": [c.to_json() for c in index.chunks]}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    names = FILES
    if index.classifiers is not None:
        index.classifiers.save(folder)
        names = (*FILES, Classifiers.FILE)
    manifest = Manifest(**{**asdict(index.manifest), "files": {n: _sha256(folder / n) for n in names}})
    (folder / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
    for name in (*names, "manifest.json"):
        with open(folder / name, "rb") as f:
            os.fsync(f.fileno())
    return manifest


def _has_index(directory: Path) -> bool:
    try:
        return (directory / CURRENT).is_file()
    except OSError:
        return False


def save_index(index: SearchIndex, directory: Path) -> Path:
    """Write the index into a new folder, then switch CURRENT to it in one atomic rename."""
    directory = Path(directory)
    had_index = _has_index(directory)
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
        kept = "the previous index was left as it was" if had_index else "no index was saved there before either"
        raise IndexStoreError(f"could not save the index in {directory}: {exc.strerror or exc}; {kept}. "
                              "Free some disk space or make the folder writable (ASSISTANT_DATA_DIR), "
                              "then try again.") from exc
    _remove_old(directory, keep=final.name)
    return final


def _remove_old(directory: Path, keep: str) -> None:
    """Earlier indexes and builds that died half-way; nothing else in the folder is touched."""
    for child in directory.iterdir():
        if child.is_dir() and child.name != keep and child.name.startswith((PREFIX, BUILDING)):
            shutil.rmtree(child, ignore_errors=True)


def stale_reason(index: SearchIndex, kb: KnowledgeBase, embedder: Embedder) -> str | None:
    m = index.manifest
    if m.format != FORMAT:
        return f"index format {m.format} is not {FORMAT}"
    if m.model != embedder.name or m.dim != embedder.dim:
        return f"the model changed ({m.model} -> {embedder.name})"
    if m.knowledge_digest != kb.digest:
        return "the knowledge base changed"
    if m.text_digest != tables_digest():
        return "the tables text is read with changed (Cantonese words, stopwords)"
    return None


# Indexes this process built but could not save (a read-only or full data folder), by folder, knowledge and
# model: served again from memory, so such a folder costs one build (45 s of CPU) per process, not one per
# page view, and the failure is said once.
_UNSAVED: dict[tuple[str, str, str, int], SearchIndex] = {}


def load_or_build(kb: KnowledgeBase, embedder: Embedder, directory: Path,
                  progress: Progress | None = None) -> SearchIndex:
    """Serve the saved index if it is intact and current; otherwise rebuild and save it. When it cannot be
    saved, the index built is served from memory (its `unsaved` says why) and the failure is remembered."""
    say = progress or (lambda _msg: None)
    remembered = (str(Path(directory).absolute()), kb.digest, embedder.name, embedder.dim)
    if (kept := _UNSAVED.get(remembered)) is not None:
        return kept
    try:
        index = load_index(directory)
        reason = stale_reason(index, kb, embedder)
        if reason is None:
            return index
        say(f"rebuilding the index: {reason}")
    except IndexStoreError as exc:
        say(f"building the index: {exc}")
    index = build_index(kb, embedder, progress)
    try:
        save_index(index, directory)
    except IndexStoreError as exc:
        index.unsaved = (f"{exc} Until then the index just built is used from memory, and built again "
                         "each time the assistant is started.")
        _UNSAVED[remembered] = index
        if progress:  # the command line prints it; the page's server logs it: either way, once
            progress(index.unsaved)
        else:
            log.warning("%s", index.unsaved)
    return index
