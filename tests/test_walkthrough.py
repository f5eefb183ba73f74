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
