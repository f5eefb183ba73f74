"""The walkthrough: one step at a time, back and forth, troubleshooting, and a final check."""

from retrieval.serving.walkthrough import Walkthrough, can_walk, view


def test_progress_and_navigation(tiny_kb):
    w = Walkthrough("gv-topup", "zh")
    first = view(tiny_kb, w)
    assert first.progress == "第 1 步，共 4 步" and first.text == "打开 voice.google.com。"
    assert view(tiny_kb, w.next().next()).number == 3
    assert w.next().next().back().step == 1 and w.back().step == 0


def test_last_step_checks_the_result(tiny_kb):
    w = Walkthrough("gv-topup", "en", step=3)
    last = view(tiny_kb, w)
    assert last.is_last and "receipt" in last.text and last.progress == "Step 4 of 4"
    assert view(tiny_kb, w.next()).finished


def test_failed_step_shows_troubleshooting_and_payment_help(tiny_kb):
    w = Walkthrough("gen-topup", "en", step=1).fail()
    v = view(tiny_kb, w)
    assert v.troubleshooting == "If not, try this: Try another card."
    assert "call your bank" in v.payment_help
    assert not view(tiny_kb, w.next()).troubleshooting


def test_only_entries_with_steps_can_be_walked(tiny_kb):
    assert can_walk(tiny_kb, "gv-topup") and not can_walk(tiny_kb, "gv-amount") and not can_walk(tiny_kb, "x")


def test_payment_help_only_on_a_step_that_pays(tiny_kb):
    opening = view(tiny_kb, Walkthrough("gv-topup", "zh", step=0).fail())
    assert not opening.payment_help and not opening.can_fail     # "打开 voice.google.com": nothing to pay
    paying = view(tiny_kb, Walkthrough("gv-topup", "zh", step=2).fail())
    assert paying.can_fail and "打电话给发卡行" in paying.payment_help


def test_finished_says_so_instead_of_a_step_number_and_offers_the_next_question(kb_dir):
    from retrieval.knowledge import load_knowledge
    from retrieval.settings import ROOT

    kb = load_knowledge(ROOT / "knowledge")
    done = view(kb, Walkthrough("gv-topup-steps", "zh", step=99))
    assert done.finished and done.progress == "" and "全部完成" in done.text
    assert done.follow_up is not None and done.follow_up.entry_id in kb.by_id
    assert kb.by_id[done.follow_up.entry_id].topic == "arrival_time"


def test_copyable_codes_and_addresses():
    from retrieval.serving.walkthrough import copyable

    assert copyable("拨 *888*PIN# 或打开 voice.google.com/u/0/settings 登录。") == (
        "*888*PIN#", "voice.google.com/u/0/settings")
    assert copyable("Text ADD10PAYG to 8080, then open https://tello.com/account.") == (
        "ADD10PAYG", "https://tello.com/account")
    assert copyable("Click Settings, then Payments.") == ()


def test_side_questions_keep_the_walkthrough_and_another_task_folds_it(tiny_kb):
    from retrieval.serving.answer import Answer, Kind
    from retrieval.serving.walkthrough import stays_open

    def answer(kind=Kind.ANSWER, provider=None, topic=None):
        return Answer("q", "zh", provider, kind, "", topic=topic)

    gv = Walkthrough("gv-topup", "zh")
    assert stays_open(tiny_kb, gv, answer(provider="google_voice", topic="payment_failed"))
    assert stays_open(tiny_kb, gv, answer(provider="google_voice", topic="topup_steps"))
    assert stays_open(tiny_kb, gv, answer(Kind.SMALL_TALK)) and stays_open(tiny_kb, gv, answer(Kind.DECLINE))
    assert not stays_open(tiny_kb, gv, answer(provider="tello", topic="topup_steps"))
    assert not stays_open(tiny_kb, gv, answer(provider="google_voice", topic="expiry"))
    assert not stays_open(tiny_kb, gv, answer(Kind.ASK_PROVIDER, topic="topup_steps"))
    general = Walkthrough("gen-topup", "zh")
    assert stays_open(tiny_kb, general, answer(topic="payment_failed"))
    assert not stays_open(tiny_kb, general, answer(provider="tello", topic="topup_steps"))  # its own steps now


def test_saved_walkthrough_is_checked_against_the_knowledge_base(tiny_kb):
    w = Walkthrough("gv-topup", "en", step=2, failed=True)
    assert Walkthrough.from_json(tiny_kb, w.to_json()) == w
    assert Walkthrough.from_json(tiny_kb, {**w.to_json(), "step": 99}).step == 4      # clamped to "finished"
    for broken in (None, [], {"entry_id": "gone", "language": "en", "step": 0},
                   {"entry_id": "gv-amount", "language": "en", "step": 0},           # no steps to walk
                   {"entry_id": "gv-topup", "language": "fr", "step": 0},
                   {"entry_id": "gv-topup", "language": "en", "step": "1"},
                   {"entry_id": "gv-topup", "language": "en", "step": True}):
        assert Walkthrough.from_json(tiny_kb, broken) is None, broken


def test_what_a_step_should_show_is_said_once():
    from retrieval.knowledge import load_knowledge
    from retrieval.settings import ROOT

    kb = load_knowledge(ROOT / "knowledge")
    for entry in kb.entries:
        for lang, steps in entry.steps.items():
            for n in range(len(steps)):
                expect = view(kb, Walkthrough(entry.id, lang, step=n)).expect
                assert "看到：看到" not in expect and "see: You see" not in expect, (entry.id, expect)
