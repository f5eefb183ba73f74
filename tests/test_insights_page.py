"""Tests for the insights page: nothing without a password, nothing with a wrong one, everything with the right one."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from retrieval.store.feedback import FeedbackStore

# AppTest resolves a relative path against the test file, not the working directory.
PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "insights.py")
PASSWORD = "s3cret-口令"
DECLINED = "Can I pay with bitcoin?"


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "feedback.sqlite3"
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(path))
    monkeypatch.delenv("ASSISTANT_OPERATOR_PASSWORD", raising=False)
    return path


@pytest.fixture
def filled(db):
    store = FeedbackStore(db)
    answered = store.log_interaction(session_id="s", question="how to top up tello", language="en",
                                     provider="tello", kind="answer", entry_id="tello.topup_steps",
                                     topic="topup_steps", answered=True, score=0.9)
    store.log_feedback(interaction_id=answered, rating=1)
    declined = store.log_interaction(session_id="s", question=DECLINED, language="en", provider=None,
                                     kind="decline", entry_id=None, topic=None, answered=False, score=0.3)
    store.log_feedback(interaction_id=declined, rating=0)
    store.close()
    return db


def page_text(at: AppTest) -> str:
    """Everything the page wrote, tables included, as one string to search."""
    parts = [element.value for kind in ("markdown", "info", "error", "warning", "caption", "title", "header")
             for element in getattr(at, kind)]
    parts += [frame.value.to_string() for frame in at.dataframe]
    return "\n".join(str(part) for part in parts)


def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input[0].input(password)
    at.button[0].click()
    return at.run(timeout=30)


def test_without_a_password_it_explains_how_to_set_one_and_shows_no_data(filled):
    at = AppTest.from_file(PAGE).run(timeout=30)
    assert not at.exception
    text = page_text(at)
    assert "ASSISTANT_OPERATOR_PASSWORD" in text and ".streamlit/secrets.toml" in text
    assert len(at.text_input) == 0  # not even a login form
    assert DECLINED not in text
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


def test_a_wrong_password_shows_an_error_and_no_data(filled, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = AppTest.from_file(PAGE).run(timeout=30)
    assert not at.exception
    assert DECLINED not in page_text(at)

    sign_in(at, PASSWORD + "x")
    assert not at.exception
    assert len(at.error) == 1 and "Wrong password" in at.error[0].value
    assert DECLINED not in page_text(at)
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


def test_the_right_password_shows_declined_questions_and_an_export(filled, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = sign_in(AppTest.from_file(PAGE).run(timeout=30), PASSWORD)
    assert not at.exception
    assert len(at.error) == 0
    assert DECLINED in page_text(at)
    assert "how to top up tello" not in page_text(at)  # answered questions are counted, not listed
    assert len(at.get("download_button")) == 1
    assert [m.value for m in at.metric] == ["2", "1", "50%"]

    # The login is remembered for the session: a rerun does not ask again.
    at.run(timeout=30)
    assert DECLINED in page_text(at) and len(at.text_input) == 0


def test_the_secrets_file_password_wins_over_the_environment(filled, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", "from-env")
    at = AppTest.from_file(PAGE)
    at.secrets["operator_password"] = PASSWORD
    at.run(timeout=30)
    assert DECLINED not in page_text(sign_in(at, "from-env"))
    assert DECLINED in page_text(sign_in(at, PASSWORD))


def test_a_changed_password_ends_the_session(filled, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = sign_in(AppTest.from_file(PAGE).run(timeout=30), PASSWORD)
    assert DECLINED in page_text(at)
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", "rotated")
    at.run(timeout=30)
    assert DECLINED not in page_text(at) and len(at.text_input) == 1


def test_an_empty_database_says_so(db, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = sign_in(AppTest.from_file(PAGE).run(timeout=30), PASSWORD)
    assert not at.exception
    assert "No questions yet" in page_text(at)
