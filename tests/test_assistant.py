"""The assistant's decisions on a tiny knowledge base with a deterministic embedder."""

import pytest

from retrieval.serving.answer import UNANSWERED, Kind


def test_answers_from_named_provider(tiny_assistant):
    a = tiny_assistant.ask("GV怎么充值")
    assert a.kind is Kind.ANSWER and a.entry_id == "gv-topup" and a.provider == "google_voice"
    assert a.language == "zh" and "Settings → Payments → Add credit" in a.markdown
    assert "1. 打开 voice.google.com。" in a.markdown and "https://support.google.com/voice/answer/141923" in a.markdown


def test_provider_carried_over_and_overridden(tiny_assistant):
    assert tiny_assistant.ask("how do i top up", provider="tello").entry_id == "tello-topup"
    assert tiny_assistant.ask("gv top up", provider="tello").provider == "google_voice"


def test_never_another_providers_entry(tiny_assistant):
    """Google Voice's entry is the one that says "add credit"; with Tello chosen, the answer and every hit are
    Tello's (or general advice), never Google Voice's."""
    a = tiny_assistant.ask("how do i add credit", provider="tello")
    assert a.kind is Kind.ANSWER and a.entry_id == "tello-topup" and a.provider == "tello"
    assert a.hits and {h.provider for h in a.hits} <= {"tello", "general"}


def test_falls_back_to_general_when_provider_has_no_entry(tiny_assistant, tiny_kb):
    a = tiny_assistant.ask("my card was declined", provider="tello")
    from_general = f"_{tiny_kb.message('from_general', 'en', provider='Tello')}_"
    assert a.entry_id == "gen-declined" and a.markdown.startswith(from_general) and "Tello" in a.markdown
    assert from_general not in tiny_assistant.ask("how do i add credit", provider="tello").markdown  # its own entry


def test_asks_back_when_provider_needed(tiny_assistant):
    a = tiny_assistant.ask("how do i top up")
    assert a.kind is Kind.ASK_PROVIDER and a.provider is None
    assert {"google_voice", "tello"} <= {c.provider for c in a.choices}
    assert a.hits[0].entry_id == "gen-topup"


def test_language_follows_question_or_choice(tiny_assistant):
    assert tiny_assistant.ask("gv top up").language == "en"
    assert tiny_assistant.ask("gv top up", language="zh").language == "zh"
    assert "给 GV 充值" in tiny_assistant.ask("gv top up", language="zh").markdown


def test_symbols_are_not_understood_and_empty_is_empty(tiny_assistant):
    assert tiny_assistant.ask("？？？").kind is Kind.NOT_UNDERSTOOD
    assert tiny_assistant.ask("   ").kind is Kind.EMPTY
    assert not tiny_assistant.ask("？？？").answered


def test_not_understood_names_provider_support(tiny_assistant):
    a = tiny_assistant.ask("🙂🙂", provider="tello")
    assert a.kind is Kind.NOT_UNDERSTOOD and "https://tello.com/help_center" in a.markdown


def test_secrets_masked_and_warned(tiny_assistant):
    question = "GV怎么充值 我的卡 4111 1111 1111 1111"
    a = tiny_assistant.ask(question)
    assert "4111" not in a.question and tiny_assistant.understand(question).secrets == ("card",) and a.notices


def test_long_question_cut_with_notice(tiny_assistant):
    a = tiny_assistant.ask("gv top up " * 500)
    assert len(a.question) == tiny_assistant.max_chars and any("500" in n for n in a.notices)


def test_related_follow_ups_are_other_entries(tiny_assistant):
    a = tiny_assistant.ask("gv top up")
    assert [c.entry_id for c in a.related] == ["gv-amount"]


def test_contract_json(tiny_assistant):
    j = tiny_assistant.ask("gv top up").to_json()
    assert {"question", "language", "provider", "answered", "hits", "answer"} <= set(j)
    assert len(j["hits"]) >= 3
    assert set(j["hits"][0]) >= {"chunk_id", "provider", "topic", "score", "title", "text"}


@pytest.mark.parametrize("question, provider", [
    ("GV怎么充值", None), ("gv top up", None), ("how do i top up", None), ("how do i add credit", "tello"),
    ("my card was declined", "tello"), ("what's the weather tomorrow", None), ("hi", None), ("", None),
    ("asdfgh", None), ("那 Tello 呢", "google_voice")])
def test_hits_come_in_the_order_of_their_score_and_answered_follows_kind(tiny_assistant, question, provider):
    """One meaning per word (issue 14): `score` is what ranks, so `ask --jsonl` prints it best first; the
    cosine is `similarity`; `answered` is the kind's, the same everywhere."""
    a = tiny_assistant.ask(question, provider=provider)
    scores = [h["score"] for h in a.to_json()["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert a.answered is (a.kind not in UNANSWERED) and a.to_json()["answered"] is a.answered
    assert a.to_json()["kind"] == a.kind.value
