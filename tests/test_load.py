"""Load: a dozen browser sessions at once against one real server, each with its own questions.

One Chromium, one context per session (so one Streamlit session each), driven concurrently with Playwright's
async API. Every session asks 2-3 questions about its own provider, in Chinese or English, and takes one step
of a walkthrough in between. The test checks that every answer arrives, that no session ever shows another
session's conversation (on the page and in the feedback database), and prints the p95 time to answer.
It asserts nothing about absolute speed: the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from retrieval.measure.browser import (
    APP_READY_TIMEOUT,
    ASSISTANT_MESSAGE,
    BLOCK,
    CHROMIUM,
    CHROMIUM_ARGS,
    LAPTOP,
    PROGRESS,
    USER_MESSAGE,
    async_ask,
    async_click,
    async_open_chat,
)

pytestmark = pytest.mark.browser
pytest_plugins = ["conftest_browser"]  # live_server

# One provider per session, so a leak from one session to another cannot go unnoticed. The first question of
# each has step-by-step instructions (a walkthrough); all questions are different from each other.
SESSIONS: list[tuple[str, ...]] = [
    ("GV怎么充值？", "Google Voice 余额多久过期", "How much credit can I add to Google Voice?"),
    ("How do I top up Mint Mobile?", "Mint 余额会过期吗"),
    ("Tello 怎么充值", "Tello balance expire?", "Tello 能用 PayPal 付款吗"),
    ("My AT&T prepaid refill", "AT&T 预付费退款"),
    ("T-Mobile 预付费怎么续费？", "How long until my T-Mobile prepaid number expires?"),
    ("Cricket怎么充值", "Cricket autopay discount"),
    ("Lycamobile 怎么充值", "Lycamobile plan expiry"),
    ("Visible 怎么付款", "Can I pay Visible with PayPal?", "Visible 自动续费什么时候扣款"),
    ("H2O wireless refill", "H2O 余额多久过期"),
    ("Verizon prepaid 怎么充值", "Verizon prepaid refund"),
    ("Ultra Mobile 怎么充值", "Ultra Mobile international calling balance"),
    ("Skype credit怎么买", "Is Skype still working?"),
]
ANSWER_TIMEOUT = 120.0   # one answer, with a dozen sessions competing for 2 cores
TOTAL_TIMEOUT = 240.0    # the whole load run, after the warm-up


@dataclass
class SessionResult:
    questions: tuple[str, ...]
    timings: list[float] = field(default_factory=list)
    shown_questions: list[str] = field(default_factory=list)
    answers: int = 0
    walk_before: str = ""
    walk_after: str = ""


async def walk_progress(page) -> str:
    box = page.locator(BLOCK).filter(has_text=PROGRESS).last
    match = PROGRESS.search(await box.inner_text())
    return match.group(0) if match else ""


async def one_session(browser, url: str, questions: tuple[str, ...]) -> SessionResult:
    result = SessionResult(questions)
    context = await browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(ANSWER_TIMEOUT * 1000)
    try:
        page = await context.new_page()
        await async_open_chat(page, url, timeout=APP_READY_TIMEOUT)
        result.timings.append(await async_ask(page, questions[0], timeout=ANSWER_TIMEOUT))
        zh = _is_zh(questions[0])  # the walkthrough speaks the language of the answer
        await async_click(page, "一步步带我做" if zh else "Walk me through it", timeout=ANSWER_TIMEOUT)
        await async_click(page, "完成，下一步" if zh else "Done, next step", timeout=ANSWER_TIMEOUT)
        result.walk_before = await walk_progress(page)
        for question in questions[1:]:
            result.timings.append(await async_ask(page, question, timeout=ANSWER_TIMEOUT))
        result.walk_after = await walk_progress(page)
        result.shown_questions = await page.locator(USER_MESSAGE).locator(
            '[data-testid="stChatMessageContent"]').all_inner_texts()
        result.answers = await page.locator(ASSISTANT_MESSAGE).count()
        return result
    finally:
        await context.close()


def _is_zh(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def run_load(url: str) -> list[SessionResult | BaseException]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # Warm up: the first page load of a fresh server loads the model; keep that out of the timings.
            warm = await browser.new_page(viewport=LAPTOP)
            await async_open_chat(warm, url, timeout=APP_READY_TIMEOUT)
            await warm.close()
            sessions = [one_session(browser, url, questions) for questions in SESSIONS]
            return await asyncio.wait_for(asyncio.gather(*sessions, return_exceptions=True), TOTAL_TIMEOUT)
        finally:
            await browser.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def last_interaction(db_path) -> int:
    """The id of the newest logged question (0 before the first), so the test looks only at its own rows."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT COALESCE(MAX(id), 0) FROM interactions").fetchone()[0]
    except sqlite3.OperationalError:  # no database or no table yet: nobody has asked anything
        return 0


def stored_by_session(live_server, first_id: int) -> dict[str, list[str]]:
    """The questions the server stored after row `first_id`, by session id, in the order they came."""
    with contextlib.closing(sqlite3.connect(f"file:{live_server.feedback_db}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT session_id, question FROM interactions WHERE id > ? ORDER BY id",
                          (first_id,)).fetchall()
    by_session: dict[str, list[str]] = {}
    for session_id, question in rows:
        by_session.setdefault(session_id, []).append(question)
    return by_session


def test_many_sessions_at_once_stay_separate(live_server, capsys, record_property):
    first_id = last_interaction(live_server.feedback_db)
    start = time.perf_counter()
    # In a thread of its own: the async API needs an event loop, and the sync fixtures of the other browser
    # tests may already hold Playwright in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(asyncio.run, run_load(live_server.url)).result(
            timeout=APP_READY_TIMEOUT + TOTAL_TIMEOUT + 60)
    elapsed = time.perf_counter() - start

    errors = [f"{questions[0]}: {type(r).__name__}: {r}" for questions, r in zip(SESSIONS, results, strict=True)
              if isinstance(r, BaseException)]
    assert not errors, "sessions failed:\n" + "\n".join(errors)

    for r in results:
        # Every answer arrived, and the page shows this session's questions and nobody else's, in order.
        assert r.shown_questions == list(r.questions), (r.questions, r.shown_questions)
        assert r.answers == len(r.questions), r
        # The walkthrough was on step 2 and stayed there through the other questions.
        assert PROGRESS.fullmatch(r.walk_before) and r.walk_before.startswith(("第 2 步", "Step 2 ")), r
        assert r.walk_after == r.walk_before, r

    # The server kept them apart too: one session id per browser session, holding exactly its questions.
    by_session = stored_by_session(live_server, first_id)
    assert sorted(tuple(qs) for qs in by_session.values()) == sorted(SESSIONS)

    timings = [t for r in results for t in r.timings]
    summary = (f"load: {len(SESSIONS)} concurrent sessions, {len(timings)} answers in {elapsed:.1f} s; "
               f"time to answer p50 {statistics.median(timings):.2f} s, p95 {p95(timings):.2f} s, "
               f"max {max(timings):.2f} s")
    record_property("p95_time_to_answer_s", round(p95(timings), 3))
    with capsys.disabled():
        print(f"\n{summary}")


# -- the server alone: fifty conversations through the headless client ---------------------------------------
HEADLESS_CONVERSATIONS = 50
HEADLESS_QUESTIONS = 10
HEADLESS_TIMEOUT = 300.0   # the whole run, connecting included


def test_fifty_headless_conversations_get_every_answer_and_only_their_own(live_server, capsys, record_property):
    """Fifty conversations of ten questions at once, through Streamlit's own websocket protocol (no browsers,
    so the server is what is measured), each pausing 2-6 s between questions as a reader would. Every
    answer must arrive, each conversation must show exactly its own questions in order, and the store must
    hold each conversation's questions under its own id. Speed is reported, not asserted: the machine is
    shared."""
    from retrieval.measure.webload import THINK_S, conversations, run_load

    convs = conversations(HEADLESS_CONVERSATIONS, HEADLESS_QUESTIONS)
    first_id = last_interaction(live_server.feedback_db)
    result = run_load(live_server.url, convs, pid=live_server.process.pid, think=THINK_S, timeout=HEADLESS_TIMEOUT)

    failed = [f"{c.questions[0]}: {c.error}" for c in result.conversations if c.error]
    assert not failed, "conversations failed:\n" + "\n".join(failed)
    for c in result.conversations:
        assert len(c.timings) == HEADLESS_QUESTIONS and c.answers == HEADLESS_QUESTIONS, c
        assert c.shown_questions == list(c.questions), (c.questions, c.shown_questions)
    ids = [c.conversation_id for c in result.conversations]
    assert len(set(ids)) == len(ids) and all(ids)

    stored = stored_by_session(live_server, first_id)
    assert {c.conversation_id: list(c.questions) for c in result.conversations} == stored

    record_property("p95_time_to_answer_s", round(result.percentile(95), 3))
    record_property("server_cpu_per_answer_ms", round(result.cpu_per_answer_ms, 1))
    with capsys.disabled():
        print(f"\nheadless load: {result.summary()}")
