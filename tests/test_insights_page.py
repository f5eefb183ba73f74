"""Tests for the insights page: nothing without a password, nothing with a wrong one, everything with the right one;
numbers that add up, names people know, and notices the operator needs (a damaged database, a store that is away)."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest
import streamlit as st
from playwright.sync_api import expect
from streamlit import config as st_config
from streamlit.runtime.secrets import Secrets
from streamlit.testing.v1 import AppTest

from retrieval import operator
from retrieval.measure.browser import (
    APP_READY_TIMEOUT,
    CHAT_INPUT,
    LAPTOP,
    after_run,
    ask,
    open_chat,
    runs,
    wait_for_run,
)
from retrieval.store import feedback as feedback_module
from retrieval.store.feedback import FeedbackStore

pytest_plugins = ["conftest_postgres", "conftest_browser"]  # postgres_url; live_server, chromium, chat_page
CSV_LIFETIME_S = 30  # pages/insights.py: how long the CSV's link lives

# AppTest resolves a relative path against the test file, not the working directory.
ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "insights.py")
APP = str(ROOT / "app.py")
PASSWORD = "s3cret-口令"
DECLINED = "Can I pay with bitcoin?"
COMMENT = "the steps were clear, thank you"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test as a new server process: its own sign-in guard (on a clock we move) and no store opened yet."""
    clock = Clock()
    monkeypatch.setattr(operator, "guard", operator.SignInGuard(clock=clock))
    yield clock
    for store in list(feedback_module._stores.values()):
        store.close()
    feedback_module._stores.clear()


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "feedback.sqlite3"
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(path))
    monkeypatch.delenv("ASSISTANT_OPERATOR_PASSWORD", raising=False)
    monkeypatch.delenv("ASSISTANT_DATABASE_URL", raising=False)
    return path


def fill(where: Path | str) -> None:
    store = FeedbackStore(where)
    answered = store.log_interaction(session_id="s", question="how to top up tello", language="en",
                                     provider="tello", kind="answer", entry_id="tello.topup_steps",
                                     topic="topup_steps", answered=True, score=0.9)
    store.log_feedback(interaction_id=answered, rating=1, comment=COMMENT)
    declined = store.log_interaction(session_id="s", question=DECLINED, language="en", provider=None,
                                     kind="decline", entry_id=None, topic=None, answered=False, score=0.3)
    store.log_feedback(interaction_id=declined, rating=0)
    # An ask-back: answered (Answer.answered), though not an answer from an entry.
    store.log_interaction(session_id="s", question="how do I top up", language="en", provider=None,
                          kind="ask_provider", entry_id=None, topic="topup_steps", answered=True, score=0.8)
    store.close()


@pytest.fixture
def filled(db):
    fill(db)
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


def signed_in(monkeypatch) -> AppTest:
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = sign_in(AppTest.from_file(PAGE).run(timeout=30), PASSWORD)
    assert not at.exception
    return at


def charts(at: AppTest) -> list[dict]:
    """Each chart's Vega-Lite spec, with its data as `rows` (column -> values)."""
    out = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        spec["rows"] = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pydict()
        out.append(spec)
    return out


# -- who may see it ------------------------------------------------------------------------------
def test_without_a_password_it_explains_how_to_set_one_and_shows_no_data(filled):
    at = AppTest.from_file(PAGE).run(timeout=30)
    assert not at.exception
    text = page_text(at)
    assert "ASSISTANT_OPERATOR_PASSWORD" in text and ".streamlit/secrets.toml" in text
    assert len(at.text_input) == 0  # not even a login form
    assert DECLINED not in text
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_password_is_no_password(filled, monkeypatch, blank):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", blank)
    at = AppTest.from_file(PAGE).run(timeout=30)
    assert not at.exception
    assert "ASSISTANT_OPERATOR_PASSWORD" in page_text(at)
    assert len(at.text_input) == 0  # typing the same blank could not sign anyone in


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


def test_each_wrong_password_is_logged_and_makes_the_next_attempt_wait_longer(filled, monkeypatch, caplog,
                                                                              fresh_process_state):
    clock = fresh_process_state
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = AppTest.from_file(PAGE).run(timeout=30)
    with caplog.at_level(logging.WARNING, logger="retrieval.operator"):
        sign_in(at, "guess-1")
        assert "next attempt is taken in 1 s" in at.error[0].value
        sign_in(at, PASSWORD)  # the right one, but too soon: refused without being looked at
        assert "try again in 1 s" in at.error[0].value and DECLINED not in page_text(at)
        clock.now += 1.5
        sign_in(at, "guess-2")
        assert "next attempt is taken in 2 s" in at.error[0].value
        clock.now += 2.5
        sign_in(at, "guess-3")
        assert "next attempt is taken in 4 s" in at.error[0].value
        # A new session does not start the count again.
        other = sign_in(AppTest.from_file(PAGE).run(timeout=30), PASSWORD)
        assert "try again in 4 s" in other.error[0].value
    failures = [r for r in caplog.records if r.name == "retrieval.operator"]
    assert len(failures) == 5 and all(PASSWORD not in r.getMessage() for r in failures)
    assert [r.getMessage().split(" from ")[0] for r in failures] == [
        "Operator sign-in failed", "Operator sign-in refused", "Operator sign-in failed", "Operator sign-in failed",
        "Operator sign-in refused"]
    clock.now += 4.5
    assert DECLINED in page_text(sign_in(at, PASSWORD))


def test_the_right_password_shows_declined_questions_and_an_export(filled, monkeypatch):
    at = signed_in(monkeypatch)
    assert len(at.error) == 0
    assert DECLINED in page_text(at)
    assert "how to top up tello" in page_text(at)  # with its comment, below
    assert len(at.get("download_button")) == 1
    assert [m.value for m in at.metric] == ["3", "2", "67%"]

    # The login is remembered for the session: a rerun does not ask again.
    at.run(timeout=30)
    assert DECLINED in page_text(at)
    assert not [t for t in at.text_input if "password" in t.label]


def test_the_secrets_file_password_wins_over_the_environment(filled, monkeypatch):
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", "from-env")
    at = AppTest.from_file(PAGE)
    at.secrets["operator_password"] = PASSWORD
    at.run(timeout=30)
    assert DECLINED not in page_text(sign_in(at, "from-env"))
    operator.guard._next_allowed = 0.0  # (the wait after that wrong attempt is tested above)
    assert DECLINED in page_text(sign_in(at, PASSWORD))


def test_a_secrets_file_that_is_not_utf8_is_said_so_and_the_environment_used(filled, monkeypatch, tmp_path):
    bad = tmp_path / "secrets.toml"
    bad.write_bytes('operator_password = "caf\u00e9"\n'.encode("latin-1"))
    previous = st_config.get_option("secrets.files")
    st_config.set_option("secrets.files", [str(bad)])
    monkeypatch.setattr(st, "secrets", Secrets())  # a server that has not read its secrets yet
    try:
        monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
        at = AppTest.from_file(PAGE).run(timeout=30)
        assert not at.exception
        assert "secrets.toml" in at.warning[0].value and "UTF-8" in at.warning[0].value
        assert DECLINED in page_text(sign_in(at, PASSWORD))
    finally:
        st_config.set_option("secrets.files", previous)


def test_a_changed_password_ends_the_session(filled, monkeypatch):
    at = signed_in(monkeypatch)
    assert DECLINED in page_text(at)
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", "rotated")
    at.run(timeout=30)
    assert DECLINED not in page_text(at) and len(at.text_input) == 1


def test_the_page_is_reached_through_the_chat_app_by_its_url(filled, monkeypatch, kb_dir):
    monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(kb_dir))
    monkeypatch.setenv("ASSISTANT_MODEL", "hashing")
    monkeypatch.setenv("ASSISTANT_OPERATOR_PASSWORD", PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and DECLINED not in page_text(at)
    at.switch_page("pages/insights.py").run()
    assert not at.exception
    assert "Operator password / 操作员密码" in [t.label for t in at.text_input]
    assert DECLINED in page_text(sign_in(at, PASSWORD))


# -- what it shows -------------------------------------------------------------------------------
def test_answered_and_not_answered_add_up_by_kind(filled, monkeypatch):
    at = signed_in(monkeypatch)
    by_kind = next(frame.value for frame in at.dataframe if "kind" in frame.value.columns
                   and "questions" in frame.value.columns)
    assert by_kind.to_dict("records") == [
        {"kind": "answer / 回答", "answered": True, "questions": 1},
        {"kind": "asked which provider / 追问运营商", "answered": True, "questions": 1},
        {"kind": "declined / 拒答", "answered": False, "questions": 1}]
    assert "2 answered + 1 not = 3" in page_text(at)


def test_the_share_answered_is_a_percent(filled, monkeypatch):
    at = signed_in(monkeypatch)
    share = next(c for c in charts(at) if c["encoding"]["y"]["field"] == "percent")
    assert share["rows"]["percent"] == [pytest.approx(200 / 3, abs=0.1)]
    assert "%" in share["encoding"]["y"]["title"]


def test_the_feedback_chart_labels_each_axis_with_what_it_shows(filled, monkeypatch):
    at = signed_in(monkeypatch)
    chart = next(c for c in charts(at) if "thumbs_up" in str(c["rows"]) or "thumbs_up" in json.dumps(c))
    axes = {e["field"]: e["title"] for e in (chart["encoding"]["x"], chart["encoding"]["y"])}
    assert axes["provider"].startswith("provider")
    assert [title for field, title in axes.items() if field != "provider"][0].startswith("ratings")


def test_providers_and_topics_have_their_names_not_their_ids(filled, monkeypatch):
    at = signed_in(monkeypatch)
    text = page_text(at)
    assert "Tello" in text and "How to top up / 充值步骤" in text
    tables = [frame.value for frame in at.dataframe]
    for frame in tables:
        for column in ("provider", "topic"):
            if column in frame:
                assert not frame[column].isin(["tello", "topup_steps"]).any(), frame
    bars = {tuple(c["rows"].get("provider", c["rows"].get("topic", []))) for c in charts(at)}
    assert ("Tello",) in bars and ("How to top up / 充值步骤",) in bars


def test_comments_are_shown_with_their_question(filled, monkeypatch):
    at = signed_in(monkeypatch)
    comments = next(frame.value for frame in at.dataframe if "comment" in frame.value.columns)
    assert comments[["rating", "comment", "question"]].to_dict("records") == [
        {"rating": "👍", "comment": COMMENT, "question": "how to top up tello"}]


def test_an_empty_database_says_so(db, monkeypatch):
    at = signed_in(monkeypatch)
    assert "No questions yet" in page_text(at)


def test_the_page_works_on_postgresql(db, monkeypatch, postgres_url):
    fill(postgres_url)
    monkeypatch.setenv("ASSISTANT_DATABASE_URL", postgres_url)
    at = signed_in(monkeypatch)
    assert DECLINED in page_text(at) and [m.value for m in at.metric] == ["3", "2", "67%"]
    assert not db.exists()  # the SQLite file was not used


# -- notices for the operator --------------------------------------------------------------------
def test_a_database_damaged_and_replaced_by_the_chat_page_is_shown_with_the_copys_path(db, monkeypatch):
    db.write_bytes(b"this is not a database" * 100)
    FeedbackStore(db).close()  # the chat page's process found it first, moved it aside, started afresh
    copies = list(db.parent.glob("feedback.sqlite3.corrupt-*"))
    assert len(copies) == 1
    at = signed_in(monkeypatch)  # a later process (or the other page): the notice still reaches the operator
    warnings = " ".join(w.value for w in at.warning)
    assert "damaged" in warnings and str(copies[0]) in warnings


def test_a_store_that_cannot_be_opened_is_explained_not_a_crash(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB", str(blocker / "fb.sqlite3"))
    at = signed_in(monkeypatch)
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert str(blocker / "fb.sqlite3") in errors and "ASSISTANT_FEEDBACK_DB" in errors


# -- in a real browser, on the real server -------------------------------------------------------
def open_insights(page, url: str) -> None:
    before = runs(page).finished
    page.goto(f"{url}/insights", wait_until="domcontentloaded", timeout=APP_READY_TIMEOUT * 1000)
    wait_for_run(page, before, timeout=APP_READY_TIMEOUT)


@pytest.mark.browser
def test_users_see_no_link_to_the_insights_page_but_its_url_works(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
    expect(page.get_by_text("Insights", exact=False)).to_have_count(0)
    open_insights(page, live_server.url)
    expect(page.get_by_label(re.compile("Operator password"))).to_be_visible()
    expect(page.locator(CHAT_INPUT)).to_have_count(0)


@pytest.mark.browser
def test_the_csv_link_needs_the_session_and_dies_soon_after(chromium, live_server):
    context = chromium.new_context(viewport=LAPTOP, locale="en-US", accept_downloads=True)
    context.set_default_timeout(60_000)
    try:
        page = context.new_page()
        open_chat(page, live_server.url)
        ask(page, "How do I top up Google Voice?")  # something to export
        open_insights(page, live_server.url)
        password = page.get_by_label(re.compile("Operator password"))
        password.fill(live_server.password)
        after_run(page, page.get_by_role("button", name=re.compile("Sign in")).click)
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile("Download all as CSV")).click()
        link = download.value.url
        assert "/media/" in link and Path(download.value.path()).read_bytes().startswith("\ufeff".encode())
    finally:
        context.close()  # the operator leaves
    time.sleep(CSV_LIFETIME_S + 5)
    # Anyone who got hold of the link (a proxy's log, the browser's history) gets nothing now.
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(link, timeout=10)
    assert gone.value.code == 404


# -- the inbox (issue 15) -----------------------------------------------------------------------------------
FEED = ["how do i feed my gv", "how do i feed my google voice"]


@pytest.fixture
def inbox_env(db, monkeypatch, kb_dir, tmp_path):
    """The page over the tiny knowledge base and the hashing model, with two declined questions and a report."""
    import yaml

    from retrieval.learn import live as live_module

    monkeypatch.setenv("ASSISTANT_KNOWLEDGE_DIR", str(kb_dir))
    monkeypatch.setenv("ASSISTANT_MODEL", "hashing")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "var"))
    sets = []
    for name, questions in (("dev", [("gv top up", ["google_voice/topup_steps"]), ("weather", "out_of_scope")]),
                            ("test", [("tello top up", ["tello/topup_steps"])])):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"questions": [{"q": q, "lang": "en", "kind": "plain", "expect": e}
                                                      for q, e in questions]}))
        sets.append(path)
    monkeypatch.setattr(live_module.Live, "sets", ((sets[0],), sets[1]))
    monkeypatch.setattr(live_module, "_lives", {})
    from retrieval.loading import load_assistant
    from retrieval.settings import Settings

    assistant = load_assistant(Settings.from_env())
    store = FeedbackStore(db)
    for n, question in enumerate(FEED):
        answer = assistant.ask(question)
        store.log_interaction(session_id=f"s{n}", question=question, language="en", provider=answer.provider,
                              kind=answer.kind.value, entry_id=None, topic=None, answered=False, score=None,
                              offered=answer.hits)
    store.report_mistake(session_id="s9", entry_id="gv-amount", text="the $5 minimum changed")
    store.close()
    return kb_dir


def until(at: AppTest, ready, timeout: float = 120.0) -> AppTest:
    """Rerun the page (as its fragment's timer would) until `ready(at)`."""
    deadline = time.monotonic() + timeout
    while not ready(at):
        assert time.monotonic() < deadline, page_text(at)
        time.sleep(0.2)
        at.run(timeout=60)
        assert not at.exception, at.exception
    return at


def test_a_group_is_attached_after_its_effect_is_shown_and_the_chat_then_answers_it(inbox_env, monkeypatch):
    from retrieval.learn.live import live

    at = signed_in(monkeypatch)
    groups = next(f.value for f in at.dataframe if "group / 问题组" in f.value.columns)
    assert groups["group / 问题组"].tolist() == ["how do i feed my google voice (2 questions, 2 users)"]
    group_id = at.selectbox(key="inbox_group").options[0]
    at.selectbox(key="inbox_group").select(group_id).run(timeout=60)
    assert at.button(key="inbox_measure").disabled  # no name yet: every action says who did it
    at.text_input(key="inbox_actor").input("Ann")
    assert at.radio(key="inbox_action").value == "attach"
    entry = at.selectbox(key="inbox_entry")
    assert entry.options[0].endswith("(gv-topup)")  # the assistant's own suggestion first
    entry.select(entry.options[0]).run(timeout=60)
    at.button(key="inbox_measure").click().run(timeout=60)
    until(at, lambda at: any(b.key and b.key.startswith("save-") for b in at.button))
    effect = next(f.value for f in at.dataframe if "set / 数据集" in f.value.columns)
    assert effect["when / 时间"].tolist() == ["before / 之前", "after / 之后"] * 2
    assert "answered 0/2 → 2/2" in page_text(at)
    assert len(at.get("download_button")) == 3  # the file, the patch, and the CSV export
    assert not list((inbox_env / "learned").glob("*.yaml"))  # nothing saved yet
    old = live().assistant()

    next(b for b in at.button if b.key and b.key.startswith("save-")).click().run(timeout=60)
    until(at, lambda at: any("Saved / 已保存" in s.value for s in at.success))
    (path,) = (inbox_env / "learned").glob("*.yaml")
    assert "by: Ann" in path.read_text(encoding="utf-8") and "entry: gv-topup" in path.read_text(encoding="utf-8")
    new = live().assistant()
    assert new is not old and all(new.ask(q).entry_id == "gv-topup" for q in FEED)
    assert "Nothing waiting" in page_text(at)
    history = next(f.value for f in at.dataframe if "actor" in f.value.columns)
    assert history[["actor", "action", "entry_id"]].to_dict("records") == [
        {"actor": "Ann", "action": "attach", "entry_id": "gv-topup"}]


def test_reported_mistakes_are_shown_by_entry_and_closed_with_who(inbox_env, monkeypatch):
    at = signed_in(monkeypatch)
    reports = next(f.value for f in at.dataframe if "text" in f.value.columns)
    assert reports[["entry", "text"]].to_dict("records") == [
        {"entry": "GV 余额上限 / Google Voice balance cap (gv-amount)", "text": "the $5 minimum changed"}]
    assert at.button(key="report-fixed").disabled  # no name yet: an action says who did it
    at.text_input(key="inbox_actor").input("Ann").run(timeout=60)
    at.button(key="report-fixed").click().run(timeout=60)
    assert not [f for f in at.dataframe if "text" in f.value.columns]
    history = next(f.value for f in at.dataframe if "actor" in f.value.columns)
    assert history[["actor", "action", "entry_id"]].to_dict("records") == [
        {"actor": "Ann", "action": "fixed", "entry_id": "gv-amount"}]
