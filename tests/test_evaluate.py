"""Calibrating the decline rule on a small synthetic development set (the tiny knowledge base, the hashing embedder)."""

from __future__ import annotations

import io
import re

import pytest
from conftest import copy_tiny_kb

from retrieval.build.index import build_index
from retrieval.knowledge import load_knowledge
from retrieval.measure.evaluate import OUT_OF_SCOPE, DevQuestion, calibrate, decline_signals
from retrieval.serving.answer import Kind
from retrieval.serving.assistant import Assistant
from retrieval.serving.decide import DecisionConfig, DeclineSignals
from retrieval.serving.embedder import HashingEmbedder

OURS = [
    "GV怎么充值", "谷歌语音加余额", "how do i add credit to google voice", "gv top up",
    "GV最多能充多少", "GV余额上限", "google voice maximum balance", "gv credit limit",
    "Tello怎么充值", "Tello续费", "how do i top up tello", "tello renew",
    "怎么充值", "话费怎么充", "how do i top up", "how to recharge my phone",
    "卡被拒了", "信用卡支付失败", "my card was declined", "payment failed",
    "代充靠谱吗", "打折充值是骗局吗", "is a top up agent safe", "discount recharge scam",
    "gv 怎么加钱", "tello 充值", "my payment failed", "信用卡被拒", "top up agent scam", "google voice credit",
]
NOT_OURS = [
    "今天天气怎么样", "这周末会下雪吗", "红烧鱼怎么做", "附近有什么好吃的餐厅", "怎么减肥",
    "怎么学弹吉他", "周末去哪里玩好", "火车票怎么买",
    "what's the weather tomorrow", "who won the game last night", "how do i cook rice", "best pizza near me",
    "how to lose weight", "recommend a good movie", "how do i learn python",
]
# Answered before the decline rule is consulted: they do not count.
BEFORE_THE_RULE = ["", "asdfgh", "？？？"]
# Declined before it, by the name of a service or a topic that is not ours (knowledge/other_services.yaml).
DECLINED_BY_NAME = ["签证面试要准备什么", "中国移动怎么交话费", "how do i set up voicemail", "明天股票会涨吗"]


def question(text: str, expect) -> DevQuestion:
    return DevQuestion(text, "en", "synthetic", expect)


QUESTIONS = ([question(q, ("x/y",)) for q in OURS] + [question(q, OUT_OF_SCOPE) for q in NOT_OURS]
             + [question(q, ("x/y",)) for q in BEFORE_THE_RULE] + [question(q, OUT_OF_SCOPE) for q in DECLINED_BY_NAME])
PRINTED = re.compile(r"calibrated on (\d+) questions \((\d+) out of scope\): 5-fold cross-validated ([\d.]+) of "
                     r"out-of-scope declined, ([\d.]+) of in-scope declined\n"
                     r"DecisionConfig\(decline_weights=\((.+)\), decline_bias=(\S+), min_answer_probability=(\S+)\)")


@pytest.fixture(scope="module")
def assistant(tmp_path_factory) -> Assistant:
    """The tiny assistant, once for the module: calibrating replays every question."""
    kb = load_knowledge(copy_tiny_kb(tmp_path_factory.mktemp("kb")))
    embedder = HashingEmbedder()
    return Assistant(kb, build_index(kb, embedder), embedder)


@pytest.fixture(scope="module")
def calibrated(assistant) -> tuple[DecisionConfig, str]:
    out = io.StringIO()
    return calibrate(assistant, QUESTIONS, out), out.getvalue()


def test_only_questions_that_reach_the_rule_are_replayed(assistant):
    pairs = decline_signals(assistant, QUESTIONS)
    assert [q.q for q, _ in pairs] == OURS + NOT_OURS
    assert all(isinstance(s, DeclineSignals) and s.scope is not None for _, s in pairs)


def test_calibrate_returns_the_learned_rule_and_prints_its_cross_validated_rates(assistant, calibrated):
    chosen, printed = calibrated
    m = PRINTED.fullmatch(printed.strip())
    assert m, printed
    assert (int(m[1]), int(m[2])) == (len(OURS) + len(NOT_OURS), len(NOT_OURS))
    out_declined, in_declined = float(m[3]), float(m[4])
    assert out_declined >= 0.8 and in_declined <= 0.1  # a set this easy separates
    # What is printed is what is returned, ready to paste into DecisionConfig.
    assert tuple(float(w) for w in m[5].split(", ")) == chosen.decline_weights
    assert (float(m[6]), float(m[7])) == (chosen.decline_bias, chosen.min_answer_probability)
    assert len(chosen.decline_weights) == 2 * len(DeclineSignals.NAMES) + 1 and 0 < chosen.min_answer_probability < 1
    # Only the learned rule changes; every other setting is the assistant's.
    unchanged = {"decline_weights", "decline_bias", "min_answer_probability"}
    assert all(getattr(chosen, f) == getattr(assistant.decision, f)
               for f in DecisionConfig.__dataclass_fields__ if f not in unchanged)


def test_calibrate_is_deterministic(assistant, calibrated):
    again = calibrate(assistant, QUESTIONS, io.StringIO())
    assert again == calibrated[0]


def test_the_calibrated_rule_answers_ours_and_declines_the_rest(assistant, calibrated):
    recalibrated = Assistant(assistant.kb, assistant.index, assistant.embedder, decision=calibrated[0])
    assert recalibrated.ask("GV怎么充值").kind is Kind.ANSWER
    assert recalibrated.ask("how do i top up", provider="tello").entry_id == "tello-topup"
    declined = [q for q in NOT_OURS if recalibrated.ask(q).kind is Kind.DECLINE]
    assert len(declined) >= 0.8 * len(NOT_OURS), set(NOT_OURS) - set(declined)


def test_development_sets_share_no_source_or_question_with_the_frozen_test_set():
    """Tuning on a development set says nothing about the test set only if they are apart: no real post's
    page, and no question, in both (nor among the decline model's training sources)."""
    import yaml

    from retrieval.measure.evaluate import ROOT, TEST_SET

    def questions(path):
        return yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]

    test = questions(TEST_SET)
    test_sources = {q["source"] for q in test if q.get("source")}
    test_texts = {q["q"].strip() for q in test}
    training = set((ROOT / "eval" / "training_sources.txt").read_text(encoding="utf-8").split())
    assert test_sources and not test_sources & training
    turn_files = sorted((ROOT / "eval").glob("turns*.yaml"))  # conversation turns: no sources, a list
    dev_files = sorted(p for p in (ROOT / "eval").glob("*.yaml") if p != TEST_SET and p not in turn_files)
    assert len(dev_files) >= 4
    for path in dev_files:
        dev = questions(path)
        assert not {q["source"] for q in dev if q.get("source")} & test_sources, path.name
        assert not {q["q"].strip() for q in dev} & test_texts, path.name
    for path in turn_files:
        assert not {str(t["message"]).strip() for t in yaml.safe_load(path.read_text(encoding="utf-8"))} & test_texts


class _PaddedEmbedder:
    """An embedder whose vectors move with the batch they are embedded in, as a padded model's do."""

    name, dim = "padded", 2

    def __init__(self):
        self.calls: list[list[str]] = []

    def embed_queries(self, texts):
        import numpy as np

        self.calls.append(list(texts))
        return np.array([[len(t), len(texts)] for t in texts], dtype=np.float32)


def test_the_caching_embedder_embeds_a_list_as_the_model_alone_would():
    from retrieval.measure.evaluate import CachingEmbedder

    inner = _PaddedEmbedder()
    cached = CachingEmbedder(inner)
    assert cached.embed_queries(["a"]).tolist() == [[1, 1]]
    # a list with a text already seen is embedded whole: an index built through the cache is the one `prepare` builds
    assert cached.embed_queries(["a", "bb"]).tolist() == [[1, 2], [2, 2]] == _PaddedEmbedder().embed_queries(
        ["a", "bb"]).tolist()
    # a question alone comes from the cache: the model is not asked again
    assert cached.embed_queries(["bb"]).tolist() == [[2, 2]] and inner.calls == [["a"], ["a", "bb"]]
