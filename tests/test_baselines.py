"""Baselines: BM25 over jieba words and dense MiniLM, on a tiny hand-made knowledge base."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest

from retrieval.knowledge import Entry, KnowledgeBase, Link
from retrieval.measure import baselines
from retrieval.measure.baselines import BM25Baseline, MiniLMBaseline, build_baselines, minilm_model_path
from retrieval.serving.embedder import ModelError


def _entry(eid: str, provider: str, topic: str, title: tuple[str, str], questions: tuple[list[str], list[str]],
           answer: tuple[str, str]) -> Entry:
    return Entry(id=eid, provider=provider, topic=topic, checked=dt.date(2025, 1, 1),
                 title={"zh": title[0], "en": title[1]},
                 questions={"zh": tuple(questions[0]), "en": tuple(questions[1])},
                 answer={"zh": answer[0], "en": answer[1]}, steps={},
                 links=(Link("help", "https://example.com/help"),), sources=("https://example.com/help",))


ENTRIES = (
    _entry("tello-top-up", "tello", "top_up", ("给 Tello 充值", "Top up Tello"),
           (["怎么给话费充值", "余额不足怎么充值"], ["How do I add money to my balance?"]),
           ("在 Tello 应用里选择充值并付款。", "Open the Tello app, choose Top up and pay.")),
    _entry("lyca-voicemail", "lycamobile", "voicemail", ("重置语音信箱密码", "Reset the voicemail PIN"),
           (["忘记语音信箱密码"], ["I forgot my voicemail PIN", "voicemail password reset"]),
           ("拨打 *86 重置语音信箱密码。", "Dial *86 to reset your voicemail PIN.")),
    _entry("general-esim", "general", "esim", ("在手机上激活 eSIM", "Activate an eSIM on your phone"),
           (["怎么激活电子卡"], ["How do I activate an eSIM on my iPhone?"]),
           ("在设置里扫描二维码安装 eSIM。", "Scan the QR code in Settings to install the eSIM.")),
    _entry("nextiva-port", "nextiva", "port_number", ("把号码转入 Nextiva", "Port a number to Nextiva"),
           (["携号转网到 Nextiva"], ["Can I transfer my existing number to Nextiva?"]),
           ("提交转网申请并附上账单。", "Submit a port request with a recent bill.")),
)
IDS = [e.id for e in ENTRIES]


def _kb(entries: tuple[Entry, ...] = ENTRIES) -> KnowledgeBase:
    return KnowledgeBase(providers={}, topics={}, entries=entries, messages={}, required={}, digest="test")


@pytest.fixture(scope="module")
def bm25() -> BM25Baseline:
    return BM25Baseline(_kb())


@pytest.mark.parametrize(("question", "expected"), [
    ("我的话费余额不够了，怎么充值？", "tello-top-up"),
    ("語音信箱密碼忘了", "lyca-voicemail"),  # Traditional characters are normalised first
    ("how can I reset my voicemail pin", "lyca-voicemail"),
    ("transfer my number to Nextiva", "nextiva-port"),
])
def test_bm25_ranks_the_entry_sharing_words_first(bm25: BM25Baseline, question: str, expected: str) -> None:
    ranking = bm25.rank(question)
    assert ranking[0] == expected
    assert sorted(ranking) == sorted(IDS)


def test_bm25_searches_the_answers_too(bm25: BM25Baseline) -> None:
    assert bm25.rank("dial")[0] == "lyca-voicemail"  # "dial" is only in that entry's answer


def test_bm25_keeps_knowledge_base_order_among_ties() -> None:
    # Enough entries that an unstable sort would shuffle the tied, unmatched ones.
    fillers = tuple(_entry(f"filler-{i}", "general", "other", (f"其他{i}", f"other {i}"), ([f"问题{i}"], [f"q{i}"]),
                           ("无关。", "unrelated.")) for i in range(500))
    kb = _kb(ENTRIES + fillers)
    ids = [e.id for e in kb.entries]
    assert BM25Baseline(kb).rank("voicemail") == ["lyca-voicemail", *(i for i in ids if i != "lyca-voicemail")]


@pytest.mark.parametrize("question", ["", "   ", "xyzzy quux", "🙂", "的 了 吗", "the of and"])
def test_bm25_question_with_no_known_word_returns_knowledge_base_order(bm25: BM25Baseline, question: str) -> None:
    assert bm25.rank(question) == IDS


def test_baselines_refuse_an_empty_knowledge_base() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        BM25Baseline(_kb(()))


def test_minilm_model_path_points_at_the_packaged_model() -> None:
    folder = Path(minilm_model_path())
    assert (folder / "config.json").is_file()
    assert (folder / "modules.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_minilm_model_path_says_which_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baselines, "MINILM_DISTRIBUTION", "no-such-model-package")
    with pytest.raises(ModelError, match="no-such-model-package.*not installed"):
        minilm_model_path()


@pytest.fixture(scope="module")
def minilm_and_connections() -> tuple[MiniLMBaseline, list]:
    """The MiniLM baseline, built with every network connection refused and recorded."""
    attempts: list = []

    def refuse(_sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network access attempted during the test: {address}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        baseline = MiniLMBaseline(_kb())
    return baseline, attempts


@pytest.mark.model
def test_minilm_loads_with_no_network(minilm_and_connections: tuple[MiniLMBaseline, list]) -> None:
    baseline, attempts = minilm_and_connections
    assert attempts == []
    assert baseline.name == "minilm-dense"
    assert baseline.embedder.dim == 384


@pytest.mark.model
@pytest.mark.parametrize(("question", "expected"), [
    ("My voicemail PIN doesn't work, how do I reset it?", "lyca-voicemail"),
    ("I want to set up an eSIM on my new iPhone", "general-esim"),
    ("Can I bring my phone number over to Nextiva?", "nextiva-port"),
])
def test_minilm_ranks_the_matching_english_entry_first(minilm_and_connections: tuple[MiniLMBaseline, list],
                                                       question: str, expected: str) -> None:
    ranking = minilm_and_connections[0].rank(question)
    assert ranking[0] == expected
    assert sorted(ranking) == sorted(IDS)


@pytest.mark.model
def test_build_baselines_names_both() -> None:
    assert [b.name for b in build_baselines(_kb())] == ["bm25-jieba", "minilm-dense"]
