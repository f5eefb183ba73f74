"""The index: exact search equals brute force, saves and loads whole, and is never served stale or damaged."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from retrieval.build.index import (
    CURRENT,
    IndexStoreError,
    VectorIndex,
    build_index,
    load_index,
    load_or_build,
    save_index,
)
from retrieval.knowledge import load_knowledge
from retrieval.serving.embedder import HashingEmbedder


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("k", [1, 5, 50])
def test_flat_search_equals_numpy_top_k(k):
    data, queries = unit(300, 32, 1), unit(7, 32, 2)
    results = VectorIndex.build(data).search(queries, k)
    for q, row in zip(queries, results, strict=True):
        expected = np.argsort(-(data @ q), kind="stable")[:k]
        assert [i for i, _ in row] == list(expected)
        assert np.allclose([s for _, s in row], (data @ q)[expected], atol=1e-5)


def test_k_larger_than_index_is_clamped_without_padding():
    results = VectorIndex.build(unit(3, 8, 3)).search(unit(1, 8, 4), 10)
    assert len(results[0]) == 3 and all(i >= 0 for i, _ in results[0])


def test_empty_index_refused():
    index = VectorIndex.build(np.zeros((0, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="empty index"):
        index.search(unit(1, 8, 5), 3)


def test_wrong_dimension_refused():
    with pytest.raises(ValueError, match="dimension"):
        VectorIndex.build(unit(5, 8, 6)).search(unit(1, 4, 7), 1)


def test_approximate_index_above_limit_finds_the_same_neighbours():
    data = unit(2000, 32, 8)
    exact, approx = VectorIndex.build(data), VectorIndex.build(data, exact_limit=1000)
    assert "HNSW" in type(approx.index).__name__
    queries = data[:20] + 0.01 * unit(20, 32, 9)
    hits = [len({i for i, _ in a} & {i for i, _ in e}) / 10
            for a, e in zip(approx.search(queries, 10), exact.search(queries, 10), strict=True)]
    assert np.mean(hits) >= 0.95


def test_save_load_round_trip(tiny_kb, tiny_index, tmp_path):
    save_index(tiny_index, tmp_path)
    loaded = load_index(tmp_path)
    assert loaded.keys == tiny_index.keys and loaded.chunks == tiny_index.chunks
    assert loaded.manifest.knowledge_digest == tiny_kb.digest
    q = HashingEmbedder().embed_queries(["gv top up"])
    assert loaded.vectors.search(q, 5) == tiny_index.vectors.search(q, 5)


def test_manifest_names_model_dimension_and_knowledge(tiny_kb, tiny_index, tmp_path):
    folder = save_index(tiny_index, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"] == "hashing" and manifest["dim"] == 256
    assert manifest["knowledge_digest"] == tiny_kb.digest and manifest["keys"] == len(tiny_index.keys)


def test_stale_index_rebuilt_when_knowledge_changes(kb_dir, embedder, tmp_path):
    first = load_or_build(load_knowledge(kb_dir), embedder, tmp_path)
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("tello renew", "tello renewal"), encoding="utf-8")
    kb = load_knowledge(kb_dir)
    messages: list[str] = []
    second = load_or_build(kb, embedder, tmp_path, progress=messages.append)
    assert any("knowledge base changed" in m for m in messages)
    assert second.manifest.knowledge_digest == kb.digest != first.manifest.knowledge_digest
    assert "renewal" in {k.text for k in load_index(tmp_path).keys}


def test_stale_index_rebuilt_when_model_changes(tiny_kb, tmp_path):
    load_or_build(tiny_kb, HashingEmbedder(), tmp_path)
    other = HashingEmbedder(dim=64)
    other.name = "hashing-64"
    messages: list[str] = []
    rebuilt = load_or_build(tiny_kb, other, tmp_path, progress=messages.append)
    assert rebuilt.manifest.model == "hashing-64" and any("model changed" in m for m in messages)


def test_stale_index_rebuilt_when_the_text_tables_change(tiny_kb, embedder, tmp_path, monkeypatch):
    # The classifiers learn the knowledge base's texts as normalise() reads them: a Cantonese word added to its
    # table changes what a fresh build learns, so an index built before is stale though no knowledge changed.
    from retrieval.serving import text
    first = load_or_build(tiny_kb, embedder, tmp_path)
    assert first.manifest.text_digest == text.tables_digest()
    monkeypatch.setitem(text.CANTONESE, "净系", "只是")
    messages: list[str] = []
    second = load_or_build(tiny_kb, embedder, tmp_path, progress=messages.append)
    assert any("tables text is read with changed" in m for m in messages)
    assert second.manifest.text_digest == text.tables_digest() != first.manifest.text_digest


def test_current_index_served_without_rebuilding(tiny_kb, embedder, tmp_path):
    load_or_build(tiny_kb, embedder, tmp_path)
    messages: list[str] = []
    load_or_build(tiny_kb, embedder, tmp_path, progress=messages.append)
    assert messages == []


def test_truncated_index_detected_and_rebuilt(tiny_kb, embedder, tmp_path):
    folder = save_index(build_index(tiny_kb, embedder), tmp_path)
    blob = folder / "index.faiss"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    with pytest.raises(IndexStoreError, match="damaged"):
        load_index(tmp_path)
    messages: list[str] = []
    rebuilt = load_or_build(tiny_kb, embedder, tmp_path, progress=messages.append)
    assert rebuilt.vectors.size == len(rebuilt.keys) and messages
    assert load_index(tmp_path).vectors.size == rebuilt.vectors.size


def test_missing_pointer_means_no_index(tmp_path):
    with pytest.raises(IndexStoreError, match="no usable index"):
        load_index(tmp_path)


@pytest.mark.parametrize("failure", ["disk full", "folder is a file"])
def test_failed_write_keeps_previous_index(tiny_kb, embedder, tmp_path, monkeypatch, failure):
    import errno

    import retrieval.build.index as index_module

    target = tmp_path / "index"
    save_index(build_index(tiny_kb, embedder), target)
    before = (target / CURRENT).read_text()
    if failure == "disk full":
        def full(*_args):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(index_module, "_write", full)
    else:
        target = tmp_path / "a-file"
        target.write_text("not a folder")
    kept = "previous index was left as it was" if failure == "disk full" else "no index was saved there before"
    with pytest.raises(IndexStoreError, match=kept):
        save_index(build_index(tiny_kb, embedder), target)
    assert (tmp_path / "index" / CURRENT).read_text() == before
    assert load_index(tmp_path / "index").manifest.knowledge_digest == tiny_kb.digest
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".building-")]


def test_an_index_that_cannot_be_saved_is_served_from_memory_built_once_and_said_once(tiny_kb, embedder, tmp_path,
                                                                                      caplog):
    """A data folder that cannot be written (here: its path runs through a file) must not cost a rebuild on
    every load (45 s of CPU per page view with the real model), nor claim an earlier index was kept."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "index"
    said: list[str] = []
    with caplog.at_level(logging.WARNING, logger="retrieval.build.index"):
        index = load_or_build(tiny_kb, embedder, target, said.append)
    assert index.unsaved and str(target) in index.unsaved and "from memory" in index.unsaved
    assert "no index was saved there before" in index.unsaved and "previous index" not in index.unsaved
    assert any(m.startswith("embedding the knowledge base") for m in said)
    assert [m for m in said if "from memory" in m] == [index.unsaved]
    assert "from memory" not in caplog.text  # said through progress, so not logged too: once
    hits = index.vectors.search(embedder.embed_queries(["gv top up"]), 3)[0]
    assert len(hits) == 3  # a whole index, served

    said.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retrieval.build.index"):
        again = load_or_build(tiny_kb, embedder, target, said.append)
    assert again is index and said == [] and caplog.text == ""  # not built again, not said again


def test_a_saved_index_is_not_marked_unsaved(tiny_kb, embedder, tmp_path):
    assert load_or_build(tiny_kb, embedder, tmp_path / "index").unsaved is None
    assert load_or_build(tiny_kb, embedder, tmp_path / "index").unsaved is None  # and loaded back


def test_unrelated_folders_are_left_alone(tiny_kb, embedder, tmp_path):
    (tmp_path / "notes").mkdir()
    load_or_build(tiny_kb, embedder, tmp_path)
    load_or_build(tiny_kb, HashingEmbedder(dim=64), tmp_path)
    assert (tmp_path / "notes").is_dir() and (tmp_path / "knowledge" / "tello.yaml").exists()
