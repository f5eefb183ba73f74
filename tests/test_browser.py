"""End to end: the real server, the real model and index, driven by Chromium the way a user would.

Needs Debian's Chromium (`make browser`) and the prepared model and index (`make prepare`). The screenshots
for the README are written to docs/screenshots/ on the way.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from retrieval.measure.browser import (
    CHAT_INPUT,
    PHONE,
    PROGRESS,
    after_run,
    ask,
    assistant_messages,
    body_text,
    button,
    click,
    content,
    open_chat,
    progress,
    runs,
    screenshot,
    user_messages,
    wait_for_run,
    walkthrough,
)

pytestmark = pytest.mark.browser
pytest_plugins = ["conftest_browser"]  # live_server, chromium, chat_page


def test_chinese_question_gets_numbered_steps(chromium, live_server):
    context = chromium.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        open_chat(phone, live_server.url)
        answer = ask(phone, "GV怎么充值？")
        text = answer.inner_text()
        assert "voice.google.com" in text and "Add credit" in text
        steps = answer.locator("ol > li")
        assert steps.count() >= 3, text
        expect(button(answer, "一步步带我做")).to_be_visible()
        expect(phone.get_by_text("当前运营商")).to_contain_text("Google Voice")  # the provider it recognised
        screenshot(phone, "chat-steps-phone.png", top=answer.get_by_text("操作步骤", exact=True))
    finally:
        context.close()


def test_walkthrough_survives_a_side_question(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "GV怎么充值？")
    click(page, "一步步带我做")
    step, total = progress(page)
    assert step == 1 and total >= 3
    expect(walkthrough(page)).to_contain_text("voice.google.com")
    click(page, "完成，下一步")
    assert progress(page) == (2, total)
    second_step = walkthrough(page).inner_text()

    side = ask(page, "卡被拒了怎么办")                 # a side question in the middle of the walkthrough
    assert "被拒" in side.inner_text()                 # (Google Voice's own answer: the provider is remembered)
    assert progress(page) == (2, total)                # answered, and still on step 2
    assert walkthrough(page).inner_text() == second_step
    screenshot(page, "walkthrough.png", top=walkthrough(page))

    click(page, "上一步")
    assert progress(page) == (1, total)
    for expected in range(2, total + 1):
        click(page, "完成，下一步")
        assert progress(page) == (expected, total)
    last = walkthrough(page).inner_text()
    assert "收据" in last                              # the last step checks the result and keeps the receipt
    expect(button(page, "这一步不行")).to_have_count(0)
    click(page, "完成，下一步")
    expect(walkthrough(page)).to_contain_text("全部完成")
    click(page, "结束引导")
    expect(page.get_by_text(PROGRESS)).to_have_count(0)


def test_feedback_is_counted_on_the_insights_page(chat_page, live_server):
    page = chat_page
    question = "怎么给 Google Voice 充值？"
    open_chat(page, live_server.url)
    answer = ask(page, question)
    thumbs_up = answer.get_by_role("radio", name="Thumbs up")
    expect(thumbs_up).to_have_attribute("aria-checked", "false")
    after_run(page, thumbs_up.click)                   # 👍, saved by the widget's callback
    expect(thumbs_up).to_have_attribute("aria-checked", "true")
    expect(answer.get_by_label(re.compile("想补充一句"))).to_be_visible()   # the optional comment box

    # Not in the users' navigation: operators open it by its URL.
    before = runs(page).finished
    page.goto(f"{live_server.url}/insights")
    wait_for_run(page, before)
    password = page.get_by_label(re.compile("Operator password"))
    password.fill("not the password")
    after_run(page, lambda: password.press("Enter"))
    expect(page.get_by_text(re.compile(r"Wrong password\. The next attempt is taken in 1 s"))).to_be_visible()
    page.wait_for_timeout(1200)  # each wrong password costs a wait before the next attempt counts
    password.fill(live_server.password)
    after_run(page, page.get_by_role("button", name=re.compile("Sign in")).click)
    expect(page.get_by_text("Feedback / 用户反馈")).to_be_visible()
    expect(page.get_by_text("No ratings yet")).to_have_count(0)
    questions = page.locator('[data-testid="stMetric"]').filter(has_text="Questions / 提问数")
    assert int(questions.locator('[data-testid="stMetricValue"]').inner_text().replace(",", "")) >= 1
    expect(page.locator('[data-testid="stVegaLiteChart"]').filter(has_text="Google Voice").first).to_be_visible()
    page.wait_for_timeout(1000)  # let the charts finish drawing
    # From "Most asked" down: the bars, the declined questions and the ratings (a single day's line is empty).
    screenshot(page, "insights.png", top=page.get_by_role("heading", name="Most asked / 最常见"))

    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("Download all as CSV")).click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    mine = [row for row in rows if row["question"] == question]
    assert len(mine) == 1, rows
    assert mine[0]["rating"] == "1" and mine[0]["provider"] == "google_voice"


def test_off_topic_question_declined_kindly(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    answer = ask(page, "明天纽约天气怎么样")
    text = answer.inner_text()
    assert "我可以帮你" in text, text
    expect(button(answer, "一步步带我做")).to_have_count(0)
    screenshot(page, "decline.png")


def test_ask_back_offers_providers(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    answer = ask(page, "怎么开自动续费")
    assert "哪一家" in answer.inner_text()
    for name in ("Google Voice", "Mint Mobile", "Tello", "AT&T Prepaid"):
        expect(button(answer, name)).to_have_count(1)
    screenshot(page, "ask-back.png", top=answer)
    after_run(page, button(answer, "Mint Mobile").click)
    expect(user_messages(page)).to_have_count(2)
    assert "Mint" in assistant_messages(page).last.inner_text()
    expect(page.get_by_text("当前运营商")).to_contain_text("Mint")


def test_card_number_is_masked_and_warned(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    answer = ask(page, "我的卡号 4111 1111 1111 1111 被拒了")
    expect(answer.locator('[data-testid="stAlert"]').filter(has_text="卡号")).to_be_visible()
    expect(content(user_messages(page).last)).to_contain_text("•••• •••• •••• ••••")
    assert "4111" not in body_text(page)
    assert "4111" not in page.content()


def test_markup_is_shown_as_text_and_never_runs(chat_page, live_server):
    page = chat_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    open_chat(page, live_server.url)
    ask(page, hostile)
    page.wait_for_timeout(1000)  # time for an onerror handler to fire, if it were there
    assert dialogs == []
    expect(content(user_messages(page).last)).to_have_text(hostile)
    assert page.locator('[data-testid="stChatMessage"] img[src="x"]').count() == 0
    assert page.locator('[data-testid="stChatMessage"] script').count() == 0
    expect(page.locator(CHAT_INPUT)).to_be_empty()
