"""End to end: the real server, the real model and index, driven by Chromium the way a user would.

Needs Debian's Chromium (`make browser`) and the prepared model and index (`make prepare`). The screenshots
for the README are taken on the way, and written only by `make screenshots` (ASSISTANT_SCREENSHOTS).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import sqlite3
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
    scroll_to_top,
    user_messages,
    wait_for_run,
    wait_in_view,
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
    expect(walkthrough(page)).not_to_contain_text(PROGRESS)   # not "第 6 步，共 6 步" once it is all done
    click(page, "结束引导")
    expect(page.get_by_text(PROGRESS)).to_have_count(0)


def test_feedback_is_counted_on_the_insights_page(chat_page, live_server):
    page = chat_page
    question = "怎么给 Google Voice 充值？"
    open_chat(page, live_server.url)
    answer = ask(page, question)
    thumbs_up = answer.get_by_role("radio", name="有帮助")
    expect(thumbs_up).to_have_attribute("aria-checked", "false")
    after_run(page, thumbs_up.click)                   # 👍, saved by the widget's callback
    expect(thumbs_up).to_have_attribute("aria-checked", "true")
    expect(answer.get_by_label(re.compile("想补充一句"))).to_be_visible()   # the optional comment box

    expect(page.locator('[data-testid="stSidebarNavLink"]')).to_have_count(0)   # not listed for users...
    before = runs(page).finished                                                  # ...but reachable by its URL
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


def test_a_typed_provider_answers_the_ask_back_and_the_topic_outlasts_thanks(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "怎么开自动续费")                                  # "which provider?"
    assert "可以在结账或激活时打开" in ask(page, "用的是薄荷").inner_text()  # typed, not clicked: Mint's autopay
    assert "不客气" in ask(page, "谢谢").inner_text()
    answer = ask(page, "那 Tello 呢")                           # the topic is kept through the thanks
    assert "Tello 套餐 30 天一期" in answer.inner_text()  # its autopay entry, not what Tello is


def test_a_reply_that_describes_the_plan_answers_the_ask_back(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "how do i turn on autopay")                       # "which provider?"
    answer = ask(page, "visible, the basic plan")               # says which, asks nothing: Visible's autopay
    assert "Visible autopay" in answer.inner_text()             # not what Visible is


def test_an_emoji_is_answered_in_the_conversations_language(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "how do i top up tello")
    assert "Anything else I can help with" in ask(page, "👍").inner_text()  # not "好的", not "I didn't understand"


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


# -- what the browser review found (issue 11) and the hostile probe's markup case (issue 12) -----------
@contextlib.contextmanager
def phone_page(chromium, locale: str = "zh-CN"):
    context = chromium.new_context(viewport=PHONE, locale=locale, is_mobile=True, has_touch=True)
    context.set_default_timeout(60_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_new_answer_is_brought_into_view_from_its_top(chromium, chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    for question in ("GV怎么充值？", "T-Mobile 预付费怎么续费？", "国内信用卡被拒怎么办？"):
        ask(page, question)
    scroll_to_top(page)                                  # re-reading the start of the conversation...
    ask(page, "Mint 怎么充值")                            # ...then asking: the answer must not land out of sight
    wait_in_view(user_messages(page).last)
    with phone_page(chromium) as phone:                  # on a phone: the top of a long answer, not its end
        open_chat(phone, live_server.url)
        ask(phone, "T-Mobile 预付费怎么续费？")
        wait_in_view(user_messages(phone).last)
        wait_in_view(content(assistant_messages(phone).last).locator("p").first)


def test_walkthrough_folds_away_for_another_provider_and_comes_back(chromium, live_server):
    with phone_page(chromium) as page:
        open_chat(page, live_server.url)
        ask(page, "GV怎么充值？")
        click(page, "一步步带我做")
        click(page, "完成，下一步")
        ask(page, "T-Mobile 预付费怎么续费？")            # another provider: the GV box must not fill the screen
        expect(walkthrough(page)).to_have_count(0)
        wait_in_view(user_messages(page).last)
        resume = button(page, "继续引导")
        expect(resume).to_have_count(1)
        expect(resume).to_contain_text("第 2 步")
        click(page, "继续引导")                            # one tap brings it back, on its step
        assert progress(page)[0] == 2
        screenshot(page, "walkthrough-phone.png", top=walkthrough(page))


def test_a_failed_step_shows_its_own_advice(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "GV怎么充值？")
    click(page, "一步步带我做")
    click(page, "完成，下一步")                            # step 2: open Settings
    click(page, "这一步不行")
    box = walkthrough(page)
    expect(box.get_by_role("alert")).to_contain_text("voice.google.com")   # this step's own advice...
    expect(box.get_by_text("支付失败时可以这样处理")).to_have_count(0)        # ...not the payment article
    _, total = progress(page)
    while progress(page)[0] < total - 1:                  # the last real step: choose a card and pay
        click(page, "完成，下一步")
    click(page, "这一步不行")
    payment = box.locator('[data-testid="stExpander"]').filter(has_text="支付失败时可以这样处理")
    expect(payment).to_have_count(1)
    expect(payment.locator("details")).not_to_have_attribute("open", "")   # offered, folded


def test_ask_back_puts_its_buttons_first_and_shows_the_provider_picked(chromium, live_server):
    with phone_page(chromium) as page:
        open_chat(page, live_server.url)
        answer = ask(page, "怎么开自动续费")
        mint = button(answer, "Mint Mobile")
        wait_in_view(mint)                                 # the buttons are on screen with their question
        advice = answer.locator('[data-testid="stExpander"]').last
        assert mint.bounding_box()["y"] < advice.bounding_box()["y"]
        expect(advice.locator("details")).not_to_have_attribute("open", "")   # the general advice, folded
        screenshot(page, "ask-back-phone.png", top=answer)
        after_run(page, mint.click)
        expect(content(user_messages(page).last)).to_have_text("Mint Mobile")


def test_starts_in_the_browsers_language_with_the_controls_on_screen(chromium, live_server):
    with phone_page(chromium, locale="en-US") as page:
        open_chat(page, live_server.url)
        expect(page.get_by_text("Hi! I can help")).to_be_visible()
        for control in (button(page, "中文"), button(page, "New conversation")):
            wait_in_view(control)                          # on a phone, without opening any sidebar
            assert control.bounding_box()["x"] + control.bounding_box()["width"] <= PHONE["width"]
        screenshot(page, "welcome-phone.png")
        after_run(page, button(page, "中文").click)
        expect(page.get_by_text("你好！")).to_be_visible()


def test_reload_brings_back_the_conversation_and_the_step(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    ask(page, "GV怎么充值？")
    click(page, "一步步带我做")
    click(page, "完成，下一步")
    assert "c=" in page.url
    url = page.url
    open_chat(page, url)                                   # the tab was dropped and opened again
    expect(user_messages(page)).to_have_count(1)
    expect(content(user_messages(page).first)).to_have_text("GV怎么充值？")
    assert progress(page)[0] == 2


def test_feedback_is_confirmed_cleared_masked_and_undone(chat_page, live_server):
    page = chat_page
    open_chat(page, live_server.url)
    answer = ask(page, "My Chinese card was declined. What now?")
    thumbs_down = answer.get_by_role("radio", name="Not helpful")   # labelled in the answer's language
    after_run(page, thumbs_down.click)
    box = answer.get_by_label(re.compile("Anything to add"))
    box.fill("still fails: 4111 1111 1111 1111")
    after_run(page, lambda: box.press("Enter"))
    expect(page.locator('[data-testid="stToast"]')).to_contain_text("saved")
    expect(box).to_have_value("")
    expect(answer).to_contain_text("still fails: •••• •••• •••• ••••")
    assert "4111" not in body_text(page)
    after_run(page, thumbs_down.click)                     # clicked again: the rating is taken back
    expect(thumbs_down).to_have_attribute("aria-checked", "false")
    with contextlib.closing(sqlite3.connect(f"file:{live_server.feedback_db}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT COUNT(*) FROM feedback f JOIN interactions i ON i.id = f.interaction_id"
                          " WHERE i.question = ?", ("My Chinese card was declined. What now?",)).fetchone()
    assert rows == (0,)


def test_the_users_own_words_are_shown_as_typed(chat_page, live_server):
    page = chat_page
    typed = "text\n===\n\n    indented code\n:rocket: :material/home: www.evil.example **bold**"
    open_chat(page, live_server.url)
    ask(page, typed)
    mine = content(user_messages(page).last)
    expect(mine).to_have_text(typed)
    assert mine.inner_text() == typed  # line breaks and the four-space indent as typed, not just the words
    for markup in ("h1", "h2", "pre", "code", "a", "strong", '[data-testid="stIconMaterial"]'):
        expect(mine.locator(markup)).to_have_count(0)


def test_language_labels_touch_sizes_and_contrast(chromium, live_server):
    with phone_page(chromium) as page:
        open_chat(page, live_server.url)
        title = page.locator("h1 [data-heading-text]").first
        lines = title.evaluate("""e => { const r = document.createRange(); r.selectNodeContents(e);
            return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size; }""")
        assert lines == 1                                  # the title stays on one line on a phone
        ask(page, "GV怎么充值？")
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        expect(user_messages(page).first).to_have_attribute("aria-label", "你说")
        expect(assistant_messages(page).first).to_have_attribute("aria-label", "助手回答")
        heights = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stMain"] button'))
            .filter(b => b.offsetParent && b.getBoundingClientRect().width > 0)
            .map(b => [b.innerText.trim().slice(0, 20), b.getBoundingClientRect().height])""")
        small = [(label, h) for label, h in heights if h < 44]
        assert not small, small
        contrast = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stCaptionContainer"]'))
            .map(e => getComputedStyle(e).color.match(/[\\d.]+/g).map(Number))""")
        def luminance(rgb):
            channels = [c / 255 for c in rgb[:3]]
            channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
            return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
        assert contrast and all(1.05 / (luminance(c) + 0.05) >= 4.5 for c in contrast), contrast
        after_run(page, button(page, "English").click)
        assert page.evaluate("document.documentElement.lang") == "en"


def test_walkthrough_polish(chat_page, live_server):
    page = chat_page                                     # laptop width, where English labels were cut off
    open_chat(page, live_server.url)
    ask(page, "How do I add credit to Google Voice?")
    click(page, "Walk me through it")
    box = walkthrough(page)
    expect(box.locator('[data-testid="stCode"]').filter(has_text="voice.google.com")).to_have_count(1)  # to copy
    buttons = box.locator("button").filter(has_text=re.compile("Done|Back|didn't work|Stop"))
    labels = buttons.evaluate_all("bs => bs.map(b => [b.innerText, b.scrollWidth <= b.clientWidth + 1])")
    assert all(fits for _, fits in labels), labels              # no label cut off with "…"
    first, second = buttons.nth(0).bounding_box(), buttons.nth(1).bounding_box()
    assert second["x"] - (first["x"] + first["width"]) < 24    # no gap where "Back" would be on step 1
    _, total = progress(page)
    for _ in range(total):
        click(page, "Done, next step")
    expect(box).to_contain_text("All done")
    follow_up = box.locator(".st-key-walk-follow-up button")
    question = follow_up.inner_text().strip()
    after_run(page, follow_up.click)                          # the suggested next question is a button
    expect(content(user_messages(page).last)).to_have_text(question)
    screenshot(page, "walkthrough-finished.png", top=user_messages(page).last)
