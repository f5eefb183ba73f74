"""The operator's loop end to end, in Chromium against the real server, model and index (issue 15).

Users ask and are declined; the operator opens the inbox, attaches the group to an entry, sees its effect on the
development and test sets (and, when a score would drop, which, with Save held back until confirmed), saves it; the
chat then answers the same questions with that entry, and what was recorded is what was shown. The server works
on copies of the knowledge folder and the index, so the repository is left as it was.
Slow: measuring the action scores 1,400 questions twice and fits the classifiers again (minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from playwright.sync_api import expect

from retrieval.knowledge import load_knowledge
from retrieval.learn.effect import BETTER
from retrieval.measure.browser import (
    LAPTOP,
    after_run,
    ask,
    button,
    click,
    content,
    open_chat,
    runs,
    streamlit_server,
    wait_for_run,
)
from retrieval.settings import Settings
from retrieval.store import queries
from retrieval.store.feedback import FeedbackStore

pytestmark = pytest.mark.browser
pytest_plugins = ["conftest_browser"]  # chromium

# Declined by the assistant as it is (checked by the test), and meaning "how do I top up Google Voice". (With
# "how to feed my google voice" too, the frozen test set's MRR drops by 0.0002 and the page holds the save back.)
FEED = ["how do i feed my google voice", "how do i feed my gv"]
ENTRY = "gv-topup-steps"
MEASURE_TIMEOUT_S = 15 * 60  # scoring before and after, and fitting the classifiers, on a loaded machine
SAVE_TIMEOUT_S = 5 * 60


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A server on copies of the knowledge and of the prepared index (same digest: nothing is rebuilt)."""
    settings = Settings.from_env({})
    root = tmp_path_factory.mktemp("inbox")
    shutil.copytree(settings.knowledge_dir, root / "knowledge")
    data = root / "var"
    shutil.copytree(settings.index_dir, data / settings.index_dir.relative_to(settings.data_dir))
    with streamlit_server(env={"ASSISTANT_KNOWLEDGE_DIR": str(root / "knowledge"),
                               "ASSISTANT_DATA_DIR": str(data)}) as server:
        yield server, root / "knowledge"


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`, typing to filter as an operator would."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    shown = box.evaluate("b => b.innerText + ' ' + [...b.querySelectorAll('input')].map(i => i.value).join(' ')")
    if option in shown:
        return  # chosen already (the assistant's first suggestion may be the right entry): no rerun to wait for
    box.locator("input").click()
    page.keyboard.type(option)
    after_run(page, lambda: page.get_by_role("option").filter(has_text=option).first.click())


def sign_in(page, url: str, password: str) -> None:
    before = runs(page).finished
    page.goto(f"{url}/insights", wait_until="domcontentloaded")
    wait_for_run(page, before, timeout=300)
    page.get_by_label(re.compile("Operator password")).fill(password)
    after_run(page, page.get_by_role("button", name=re.compile("Sign in")).click, timeout=300)


def ask_as_new_user(page, question: str) -> str:
    """`question` in a new conversation (a new session id: one more user), the answer's text."""
    click(page, "New conversation")
    return content(ask(page, question)).inner_text()


def test_declined_questions_are_attached_by_the_operator_and_then_answered(chromium, own_server):
    server, knowledge = own_server
    title = load_knowledge(knowledge).by_id[ENTRY].title["en"]
    context = chromium.new_context(viewport=LAPTOP, locale="en-US")
    context.set_default_timeout(60_000)
    try:
        user = context.new_page()
        open_chat(user, server.url)
        for question in FEED:
            answer = ask_as_new_user(user, question)
            assert "outside what I can answer reliably" in answer, answer  # (its entry may be among the suggestions)

        operator = context.new_page()
        sign_in(operator, server.url, server.password)
        expect(operator.get_by_text("Inbox / 待处理")).to_be_visible()
        field = operator.get_by_label(re.compile("Your name"))
        field.fill("Ann Operator")
        after_run(operator, lambda: field.press("Enter"))
        choose(operator, "Act on a group", f"{len(FEED)} questions, {len(FEED)} users")
        # The operator searches for the steps (the assistant's first suggestion may be the overview it leaned to).
        choose(operator, "Entry, the assistant's suggestions first", f"({ENTRY})")
        click(operator, "Measure the effect")
        save = button(operator, "Save / 保存")
        expect(save).to_be_visible(timeout=MEASURE_TIMEOUT_S * 1000)
        expect(operator.get_by_text(re.compile(rf"answered 0/{len(FEED)} → {len(FEED)}/{len(FEED)}"))).to_be_visible()
        # The scores table (a canvas grid: its cells are in the page for screen readers, drawn on the canvas).
        for row in ("development / 开发集", "test (frozen) / 测试集（冻结）"):
            expect(operator.get_by_text(row, exact=True).first).to_be_attached()
        expect(button(operator, "Download the file")).to_be_visible()
        assert not list((knowledge / "learned").glob("*.yaml"))  # nothing is saved before the operator says so
        # Refitting the classifiers moves a question near the line now and then (one test question declined is
        # 0.0034): the page then names each score that would drop and holds Save back until the operator says so.
        drops = operator.get_by_text(re.compile("Scores that would drop"))
        shown = drops.inner_text() if drops.count() else ""
        if shown:
            expect(save).to_be_disabled()
            after_run(operator, lambda: operator.get_by_text("Save all the same / 仍然保存").click())
            expect(save).to_be_enabled()
        save.click()
        # Once saved the page reruns, and for a moment the last run's message stands beside the new one: wait for
        # the page to settle on one.
        saved = operator.get_by_text(re.compile("Saved / 已保存"))
        expect(saved).to_have_count(1, timeout=SAVE_TIMEOUT_S * 1000)
        expect(saved).to_be_visible()
        expect(operator.get_by_text(re.compile("the chat answers from the new index"))).to_be_visible()
        expect(operator.get_by_text("Nothing waiting. / 暂无待处理的问题。")).to_be_visible()

        # The same questions: in the conversation that was declined (where only the answer's slot reruns), and
        # from a new visitor.
        for question in FEED:
            answer = content(ask(user, question)).inner_text()
            assert title in answer and "outside what I can answer reliably" not in answer, answer
        visitor = chromium.new_page(viewport=LAPTOP, locale="en-US")
        try:
            open_chat(visitor, server.url)
            for question in FEED:
                answer = ask_as_new_user(visitor, question)
                assert title in answer and "outside what I can answer reliably" not in answer, answer
        finally:
            visitor.close()
    finally:
        context.close()

    (path,) = (knowledge / "learned").glob("*.yaml")
    text = path.read_text(encoding="utf-8")
    assert f"entry: {ENTRY}" in text and "by: Ann Operator" in text and all(q in text for q in FEED)
    load_knowledge(knowledge)  # the saved folder passes the strict loader
    store = FeedbackStore(server.feedback_db)
    try:
        (action,) = queries.actions(store).to_dict("records")
        asked = queries.export_rows(store)
    finally:
        store.close()
    assert asked[["question", "kind", "entry_id"]].tail(2 * len(FEED)).values.tolist() == [
        [question, "answer", ENTRY] for question in FEED] * 2
    assert (action["actor"], action["action"], action["entry_id"]) == ("Ann Operator", "attach", ENTRY)
    effect = json.loads(action["effect"])
    for name in ("dev", "test"):
        before, after = effect["before"][name], effect["after"][name]
        assert before["n"] == after["n"] > 300  # the whole development sets and the whole frozen test set
        for key, sign in BETTER.items():
            dropped = sign * (after[key] - before[key]) < -1e-12
            # every score that dropped was recorded with the action and shown to the operator before saving
            assert dropped == any(w.startswith(f"{name} {key} ") for w in effect["worse"]), (name, key)
    assert all(w.replace("->", "→") in shown for w in effect["worse"]), (effect["worse"], shown)  # "->" drawn as →
