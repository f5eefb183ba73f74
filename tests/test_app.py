"""The chat page, run for real by Streamlit's AppTest on the tiny knowledge base."""

from __future__ import annotations

import sqlite3

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from retrieval.settings import ROOT

APP = str(ROOT / "app.py")


@pytest.fixture
def app(kb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(kb_dir))
    monkeypatch.setenv("ASSISTANT_MODEL", "hashing")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(tmp_path / "feedback.sqlite3"))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    yield at
    st.cache_resource.clear()


def whole_page(at: AppTest) -> AppTest:
    """A question or a click reruns only a fragment of the page, and AppTest then holds only that fragment's
    elements; a plain run afterwards draws the whole page again, as the browser shows it."""
    assert not at.exception
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    return whole_page(at)


def click(at: AppTest, label: str) -> AppTest:
    matches = [b for b in at.button if b.label == label or label in b.label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    matches[0].click().run()
    return whole_page(at)


def conversation(at: AppTest):
    return at.session_state["conv"]


def markdown(at: AppTest) -> str:
    """Everything written on the page: Markdown, captions, notes, warnings and the users' own words (text)."""
    parts = [*at.markdown, *at.caption, *at.warning, *at.info, *at.text]
    return "\n".join(str(m.value) for m in parts)


def test_starters_shown_and_clickable(app):
    labels = [b.label for b in app.button]
    assert "GV怎么充值？" in labels
    click(app, "GV怎么充值？")
    assert "Settings → Payments → Add credit" in markdown(app)


def test_answer_with_steps_links_and_date(app):
    ask(app, "GV怎么充值")
    text = markdown(app)
    assert "1. 打开 voice.google.com。" in text and "support.google.com/voice/answer/141923" in text
    assert "2026-11-29" in text
    assert conversation(app).provider == "google_voice"
    assert app.selectbox[0].value == "Google Voice"


def test_walkthrough_with_side_question(app):
    ask(app, "GV怎么充值")
    click(app, "一步步带我做")
    assert "第 1 步，共 4 步" in markdown(app)
    click(app, "完成，下一步")
    assert "第 2 步，共 4 步" in markdown(app)
    ask(app, "卡被拒了")                      # a side question in the middle
    text = markdown(app)
    assert "核对邮编" in text and "第 2 步，共 4 步" in text   # answered, and still on step 2
    click(app, "上一步")
    assert "第 1 步，共 4 步" in markdown(app)
    for _ in range(3):
        click(app, "完成，下一步")
    assert "保存付款收据" in markdown(app)          # the last step checks the result


def test_step_failed_shows_help(app):
    ask(app, "怎么充值")  # asks which provider, and shows the general steps meanwhile
    click(app, "一步步带我做")
    click(app, "完成，下一步")
    click(app, "这一步不行")
    text = markdown(app)
    assert "换一张卡再试" in text and "打电话给发卡行" in text


def test_ask_back_offers_providers_as_buttons(app):
    ask(app, "how do i top up")
    labels = [b.label for b in app.button]
    assert "Google Voice" in labels and "Tello" in labels
    click(app, "Tello")
    assert "ADD10PAYG" in markdown(app) and conversation(app).provider == "tello"


def test_provider_picker_sets_context(app):
    app.selectbox[0].select("Tello").run()
    ask(app, "how do i top up")
    assert "ADD10PAYG" in markdown(app)


def test_decline_is_kind_and_links_support(app):
    app.selectbox[0].select("Tello").run()
    ask(app, "？？？")
    text = markdown(app)
    assert "I can help" in text or "我可以帮你" in text
    assert "tello.com/help_center" in text


def test_card_number_masked_and_warned(app, tmp_path):
    ask(app, "my card 4111 1111 1111 1111 was declined")
    assert any("card number" in w.value or "卡号" in w.value for w in app.warning)
    shown = markdown(app)
    assert "4111" not in shown and "•••• •••• •••• ••••" in shown
    assert "4111" not in str(conversation(app))
    db = sqlite3.connect(tmp_path / "feedback.sqlite3")
    assert "4111" not in str(db.execute("select * from interactions").fetchall())


def test_feedback_and_comment_are_stored(app, tmp_path):
    ask(app, "gv top up")
    ask(app, "my card was declined")
    app.pills[1].set_value(0).run()          # 👎 on the second answer
    whole_page(app)
    app.text_input[0].input("the ZIP tip helped, but 4111 1111 1111 1111 still fails").run()
    db = sqlite3.connect(tmp_path / "feedback.sqlite3")
    rows = db.execute("select i.question, f.rating, f.comment from interactions i "
                      "left join feedback f on f.interaction_id = i.id order by i.id").fetchall()
    assert [r[0] for r in rows] == ["gv top up", "my card was declined"]
    assert rows[0][1] is None and rows[1][1] == 0
    assert "ZIP tip" in rows[1][2] and "4111" not in rows[1][2]
    whole_page(app)                          # a rerun loses nothing
    assert len(conversation(app).turns) == 2 and app.pills[1].value == 0


def test_language_switch(app):
    app.segmented_control[0].set_value("en").run()
    ask(app, "GV怎么充值")
    assert "Add Google Voice credit" in markdown(app)


def test_new_conversation_clears(app):
    ask(app, "gv top up")
    click(app, "New conversation")
    assert conversation(app).turns == [] and conversation(app).provider is None


def test_user_markup_shown_as_text(app):
    typed = "<script>alert(1)</script> **bold** gv top up"
    ask(app, typed)
    assert [t.value for t in app.text] == [typed]      # the user's bubble: plain text, exactly as typed


def test_broken_knowledge_shows_message_not_traceback(kb_dir, tmp_path, monkeypatch):
    (kb_dir / "tello.yaml").write_text("provider: [", encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(kb_dir))
    monkeypatch.setenv("ASSISTANT_MODEL", "hashing")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "var"))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("tello.yaml" in e.value for e in at.error)
    st.cache_resource.clear()
