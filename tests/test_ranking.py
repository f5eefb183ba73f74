"""The ranker on the tiny knowledge base with the hashing embedder: its signals, both fusions, the lexical index."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from retrieval.serving.assistant import Assistant
from retrieval.serving.chunks import KeyKind
from retrieval.serving.ranking import Fusion, LexicalIndex, Ranker, RankingConfig, Vocabulary, ranks

RRF = RankingConfig(method=Fusion.RRF)


@pytest.fixture
def ranker(tiny_kb, tiny_index, embedder) -> Ranker:
    return Ranker(tiny_kb, tiny_index, embedder)


# -- configuration -------------------------------------------------------------------------------------
def test_the_method_is_read_from_its_name_and_the_two_differ():
    assert RankingConfig(method="rrf").method is Fusion.RRF
    assert RankingConfig().method is Fusion.LINEAR
    assert Fusion.RRF != Fusion.LINEAR and RankingConfig(method="rrf") != RankingConfig()


@pytest.mark.parametrize(("changes", "message"), [
    ({"method": "borda"}, "method must be 'linear' or 'rrf', got 'borda'"),
    ({"topic_pool": 0}, "topic_pool must be at least 1, got 0"),
])
def test_a_bad_config_is_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        RankingConfig(**changes)


# -- ranks and fusion ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("scores", "expected"), [
    ([0.2, 0.9, 0.5], [3, 1, 2]),
    ([1.0, 1.0, 0.0], [1, 2, 3]),  # a tie keeps the order of the entries
    ([-1.0], [1]),
    ([], []),
])
def test_ranks(scores, expected):
    assert ranks(np.array(scores, dtype=np.float32)).tolist() == expected


def signals(dense, answer, topic, lexical) -> tuple[np.ndarray, ...]:
    return tuple(np.array(x, dtype=np.float32) for x in (dense, answer, topic, lexical))


def test_linear_fusion_adds_the_weighted_signals_with_bm25_scaled_to_the_best_entry(ranker):
    dense, answer, topic, lexical = signals([0.9, 0.5, 0.7], [0.2, 0.4, 0.1], [0.8, 0.6, 0.7], [4.0, 0.0, 2.0])
    fused = ranker.fuse(dense, answer, topic, lexical)
    c = ranker.config
    words = c.weight_lexical * lexical / 4
    expected = c.weight_own * dense + c.weight_topic * topic + c.weight_answers * answer + words
    assert fused == pytest.approx(expected)
    without_words = ranker.fuse(dense, answer, topic, np.zeros(3, np.float32))  # no word of the question known
    assert np.isfinite(without_words).all() and without_words == pytest.approx(expected - words)


def test_rrf_fuses_ranks_and_bm25_only_where_it_found_words(tiny_kb, tiny_index, embedder):
    ranker = Ranker(tiny_kb, tiny_index, embedder, RRF)
    dense, answer, topic, lexical = signals([0.9, 0.5, 0.7], [0.2, 0.4, 0.1], [0.8, 0.6, 0.7], [4.0, 0.0, 2.0])
    k, c = RRF.rrf_k, RRF

    def rrf(own: int, by_topic: int, by_answer: int, by_words: int | None) -> float:
        words = c.weight_lexical / (k + by_words) if by_words else 0.0
        return c.weight_own / (k + own) + c.weight_topic / (k + by_topic) + c.weight_answers / (k + by_answer) + words

    # the ranks of each entry: dense, topic, answer, lexical (none where BM25 found no word)
    expected = [rrf(1, 1, 2, 1), rrf(3, 3, 1, None), rrf(2, 2, 3, 2)]
    assert ranker.fuse(dense, answer, topic, lexical) == pytest.approx(expected)
    no_words = ranker.fuse(dense, answer, topic, np.zeros(3, np.float32))  # an all-zero list carries no ranking
    assert no_words == pytest.approx(np.array(expected) - [c.weight_lexical / (k + 1), 0, c.weight_lexical / (k + 2)])
    # Only the order of a signal counts: scaling one changes nothing.
    assert ranker.fuse(dense * 10, answer, topic, lexical) == pytest.approx(expected)


# -- ranking a question --------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [RankingConfig(), RRF], ids=["linear", "rrf"])
@pytest.mark.parametrize(("question", "first"), [
    ("GV最多能充多少", "gv-amount"),
    ("卡被拒了", "gen-declined"),
    ("my card was declined", "gen-declined"),
    ("代充靠谱吗", "gen-scam"),
    ("is a top up agent safe", "gen-scam"),
])
def test_every_entry_is_ranked_best_first(tiny_assistant, tiny_kb, tiny_index, embedder, config, question, first):
    """What is ranked is the question as understood (provider names out, variants canonical), as `ask` does."""
    matched = tiny_assistant.understand(question).matched
    ranking = Ranker(tiny_kb, tiny_index, embedder, config).rank(matched)
    fused = [c.fused for c in ranking.candidates]
    assert fused == sorted(fused, reverse=True)
    assert sorted(c.entry_id for c in ranking.candidates) == sorted(e.id for e in tiny_kb.entries)
    assert ranking.candidates[0].entry_id == first


def test_an_assistant_ranking_by_rrf_answers(tiny_kb, tiny_index, embedder):
    """The README's alternative, `RankingConfig(method="rrf")`, one line away and working end to end."""
    assistant = Assistant(tiny_kb, tiny_index, embedder, ranking=RankingConfig(method="rrf"))
    a = assistant.ask("GV怎么充值")
    assert a.entry_id == "gv-topup" and a.provider == "google_voice"
    assert assistant.ask("how do i top up", provider="tello").entry_id == "tello-topup"


def test_the_dense_signals_are_cosines_of_the_entrys_own_keys(ranker, tiny_index, embedder):
    phrasing = next(k for k in tiny_index.keys if k.kind is KeyKind.QUESTION and k.entry_id == "gv-amount")
    ranking = ranker.rank(phrasing.text)
    best = ranking.candidates[0]
    assert best.entry_id == "gv-amount" and best.similarity == pytest.approx(1.0, abs=1e-5)
    assert ranking.best_similarity == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= c.answer <= 1.0 for c in ranking.candidates)
    # A vector handed in is used as it is: the text then only feeds the lexical signal.
    vector = embedder.embed_queries([phrasing.text])[0]
    assert ranker.rank(phrasing.text, vector) == ranking


def test_the_nearest_declined_question_and_small_talk_are_reported(ranker, tiny_kb):
    off_topic = tiny_kb.off_topic["zh"][0]
    assert ranker.rank(off_topic).off_topic == pytest.approx(1.0, abs=1e-5)
    hello = next(iter(tiny_kb.conversation.small_talk.values()))
    intent, similarity = ranker.rank(hello.questions["en"][0]).small_talk
    assert intent == hello.id and similarity == pytest.approx(1.0, abs=1e-5)


def test_an_index_of_other_entries_is_refused(tiny_kb, tiny_index, embedder):
    smaller = dataclasses.replace(tiny_kb, entries=tuple(e for e in tiny_kb.entries if e.id != "gv-amount"))
    with pytest.raises(ValueError, match=r"the index names entries the knowledge base lacks: \['gv-amount'\]"):
        Ranker(smaller, tiny_index, embedder)


# -- the lexical index and the vocabulary ----------------------------------------------------------------
def test_lexical_index_scores_the_entry_sharing_words_and_nothing_for_unknown_words(tiny_kb, tiny_index):
    lexical = LexicalIndex(tiny_kb, tiny_index.keys)
    ids = [e.id for e in tiny_kb.entries]
    scores = lexical.scores("discount recharge scam")
    assert ids[int(np.argmax(scores))] == "gen-scam" and scores.dtype == np.float32
    assert lexical.scores("zebra quantum").tolist() == [0.0] * len(ids)
    assert lexical.scores("").tolist() == [0.0] * len(ids)


def test_lexical_index_reads_phrasings_without_provider_names(tiny_kb, tiny_index):
    """Keys are stored with provider names taken out: naming the provider adds nothing lexical."""
    lexical = LexicalIndex(tiny_kb, tiny_index.keys)
    assert "tello" not in lexical.vocabulary and "gv" not in lexical.vocabulary
    assert lexical.scores("tello").tolist() == [0.0] * len(tiny_kb.entries)


def test_vocabulary_coverage(tiny_kb):
    vocabulary = Vocabulary(tiny_kb)
    assert vocabulary.coverage("how do i top up") == 1.0  # "top", "up": both known (the rest are stopwords)
    assert vocabulary.coverage("top up zebra quantum") == 0.5
    assert vocabulary.coverage("？？？") == 1.0  # no words: nothing unknown either
