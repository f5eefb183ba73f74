"""The real model on the real knowledge base: the quality floor CI holds, and the flows users rely on."""

from __future__ import annotations

import pytest

from retrieval.measure.evaluate import TEST_SET, load_dev_set, metrics, run
from retrieval.serving.answer import Kind

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def dev_metrics(real_assistant):
    return metrics(run(real_assistant, load_dev_set()))


def test_top1_floor(dev_metrics):
    print(dev_metrics)
    assert dev_metrics["top1"] >= 0.90  # the target is 0.92; the README's quality table has the latest number


def test_out_of_scope_declined(dev_metrics):
    assert dev_metrics["oos_declined"] >= 0.90


def test_in_scope_rarely_declined(dev_metrics):
    assert dev_metrics["in_scope_declined"] <= 0.03


@pytest.fixture(scope="module")
def test_metrics(real_assistant):
    return metrics(run(real_assistant, load_dev_set(TEST_SET)))


def test_frozen_test_set_floor(test_metrics):
    # The frozen test set, never tuned on: a change that loses ground here is reverted, whatever the dev set
    # says. The gate: top-1 at least 0.88 and out of scope declined at least 0.85 (today 0.897 and
    # 0.880, README quality); in scope wrongly declined at most 0.05 (today 0.037).
    print(test_metrics)
    assert test_metrics["top1"] >= 0.88
    assert test_metrics["oos_declined"] >= 0.85
    assert test_metrics["in_scope_declined"] <= 0.05


def test_gv_top_up_has_menu_path_cap_and_card_help(real_assistant):
    a = real_assistant.ask("GV怎么充值？")
    assert a.kind is Kind.ANSWER and a.provider == "google_voice" and a.has_steps
    for fact in ("Settings", "Payments", "Add credit", "$70", "iPhone", "Visa"):
        assert fact in a.markdown, fact


def test_weather_declined_kindly(real_assistant):
    a = real_assistant.ask("明天纽约天气怎么样")
    assert a.kind is Kind.DECLINE and "我可以帮你" in a.markdown


def test_declined_card_mid_conversation_stays_with_provider(real_assistant):
    a = real_assistant.ask("my card got declined", provider="google_voice")
    assert a.kind is Kind.ANSWER and a.hits[0].topic == "payment_failed"
    assert a.hits[0].provider in ("google_voice", "general")


def test_needs_provider_asks_back_then_answers(real_assistant):
    a = real_assistant.ask("最低充多少？")
    assert a.kind is Kind.ASK_PROVIDER and len(a.choices) >= 5
    b = real_assistant.ask("最低充多少？", provider="att_prepaid")
    assert b.kind is Kind.ANSWER and b.entry_id.startswith("att-") and "$10" in b.markdown


@pytest.mark.parametrize("question, provider", [
    ("goolge voice 怎么加余额", "google_voice"), ("tmobile refill", "t_mobile_prepaid"),
    ("T Mobile 预付费怎么续费", "t_mobile_prepaid"), ("薄荷卡怎么续费", "mint_mobile"),
    ("蟋蟀怎么交话费", "cricket"), ("ATT prepaid 怎么充值", "att_prepaid"),
])
def test_provider_recognised_in_any_spelling(real_assistant, question, provider):
    assert real_assistant.ask(question).provider == provider


def test_skype_top_up_says_retired(real_assistant):
    a = real_assistant.ask("skype怎么充值")
    assert a.provider == "skype" and ("2025" in a.markdown) and a.hits[0].topic in ("topup_steps", "service_status")


def test_general_advice_note_names_the_provider_without_nested_brackets(real_assistant):
    a = real_assistant.ask("Tello 充值多久到账")
    assert a.kind is Kind.ANSWER and a.markdown.startswith("_（Tello 没有这方面的专门说明")
    assert "（Tello（" not in a.markdown
