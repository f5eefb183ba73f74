"""Insights / 数据洞察: what users asked and how they rated the answers, for the operator only.

Not listed in the users' navigation (app.py hides it); reachable at /insights, behind the operator password.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from retrieval.knowledge import KnowledgeError, load_knowledge
from retrieval.operator import chosen_password, guard
from retrieval.settings import Settings
from retrieval.store import StoreError, open_store, queries

log = logging.getLogger(__name__)

LOGIN_KEY = "insights_operator"
# The CSV is built when the operator clicks, from this session only, and its /media/ URL is removed this
# long after: time enough for the browser to fetch it, too short to be of use to anyone it leaks to.
CSV_LIFETIME_S = 30
SHARE_COLUMN = {"share_positive": st.column_config.NumberColumn("👍 share / 好评率", format="percent")}
KIND_LABELS = {
    "answer": "answer / 回答", "ask_provider": "asked which provider / 追问运营商",
    "clarify": "did you mean / 确认问题", "small_talk": "small talk / 闲聊", "decline": "declined / 拒答",
    "empty": "empty / 空白", "not_understood": "not understood / 无法理解",
}


def operator_password(settings: Settings) -> tuple[str | None, str | None]:
    """(the password, a problem with the secrets file): the secrets file wins over the environment."""
    try:
        from_secrets, problem = st.secrets.get("operator_password"), None
    except FileNotFoundError:  # no secrets file at all, or one that does not parse: both subclass it
        from_secrets, problem = None, None
    except (UnicodeError, ValueError, OSError) as e:  # not UTF-8, unreadable: say so, fall back to the environment
        from_secrets, problem = None, f"{type(e).__name__}: {e}"
    return chosen_password(from_secrets, settings.operator_password), problem


def fingerprint(password: str) -> str:
    # Remembering a digest instead of a flag logs everyone out as soon as the password is changed.
    return hashlib.sha256(password.encode()).hexdigest()


@st.cache_resource(show_spinner=False)
def display_names(knowledge_dir: str) -> dict[str, dict[str, str]]:
    """Provider and topic ids to the names people know them by; ids alone when the knowledge does not load."""
    try:
        kb = load_knowledge(knowledge_dir)
    except KnowledgeError:
        return {"provider": {}, "topic": {}}
    return {"provider": {p: v.name["en"] for p, v in kb.providers.items()},
            "topic": {t: f"{v.name['en']} / {v.name['zh']}" for t, v in kb.topics.items()}}


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Provider and topic names instead of ids, kinds in words, and a dash for a missing value."""
    frame = frame.copy()
    for column in ("provider", "topic"):
        if column in frame:
            frame[column] = frame[column].map(lambda v, c=column: NAMES[c].get(v, v) if isinstance(v, str) else v)
    if "kind" in frame:
        frame["kind"] = frame["kind"].map(lambda v: KIND_LABELS.get(v, v))
    text = [column for column in frame.columns if pd.api.types.is_string_dtype(frame[column])]
    return frame.fillna(dict.fromkeys(text, "—"))


def csv_for(expected_fingerprint: str):
    """The export, built at the click; refused if the password changed since this page was drawn."""
    def build() -> bytes:
        current, _ = operator_password(Settings.from_env())
        if current is None or fingerprint(current) != expected_fingerprint:
            raise PermissionError("the operator password changed; sign in again")
        data = queries.export_csv(open_store(Settings.from_env()))
        threading.Timer(CSV_LIFETIME_S, forget_downloads).start()
        return data
    return build


def forget_downloads() -> None:
    # Streamlit keeps a generated download until two clean-ups find no session using it; on a quiet server
    # none would run for minutes. Two now remove it (and nothing that a session still shows).
    from streamlit import runtime

    if runtime.exists():
        for _ in range(2):
            runtime.get_instance().media_file_mgr.remove_orphaned_files()


def who() -> str:
    """The client's address, for the log line of a failed sign-in."""
    address = getattr(st.context, "ip_address", None)
    return address if isinstance(address, str) and address else "an unknown address"


st.set_page_config(page_title="Insights / 数据洞察", page_icon="📊", layout="wide")
st.title("📊 Insights / 数据洞察")

settings = Settings.from_env()
expected, secrets_problem = operator_password(settings)
if secrets_problem:
    st.warning(f"`.streamlit/secrets.toml` could not be read, so it is ignored: {secrets_problem}. Save it as "
               f"UTF-8. / `.streamlit/secrets.toml` 无法读取，已忽略：请以 UTF-8 编码保存。")

if not expected:
    st.info(
        "This page shows what users typed, so it needs an operator password. Set one, then reload.\n\n"
        "此页面显示用户输入的内容，需要操作员密码。请先设置密码，然后刷新页面。\n\n"
        "- Environment variable / 环境变量: `ASSISTANT_OPERATOR_PASSWORD=...`\n"
        "- or / 或 `.streamlit/secrets.toml`: `operator_password = \"...\"`"
    )
    st.stop()

if st.session_state.get(LOGIN_KEY) != fingerprint(expected):
    with st.form("operator_login"):
        typed = st.text_input("Operator password / 操作员密码", type="password")
        submitted = st.form_submit_button("Sign in / 登录")
    if submitted:
        result = guard.attempt(typed, expected, who())
        if result.ok:
            st.session_state[LOGIN_KEY] = fingerprint(expected)
            st.rerun()
        if result.too_soon:
            st.error(f"Too many wrong passwords: try again in {result.wait_s:.0f} s. / "
                     f"密码错误次数过多，请 {result.wait_s:.0f} 秒后再试。")
        else:
            st.error(f"Wrong password. The next attempt is taken in {result.wait_s:.0f} s. / "
                     f"密码错误。{result.wait_s:.0f} 秒后才能再试。")
    st.stop()

NAMES = display_names(str(settings.knowledge_dir))
store = open_store(settings)
if store.problem:
    st.error(f"The feedback database cannot be written just now / 反馈数据库暂时无法写入: {store.problem}\n\n"
             f"{store.queued} writes wait in memory and are saved when it is back; {store.dropped} were dropped. / "
             f"{store.queued} 条记录在内存中等待写入，{store.dropped} 条已丢弃。")
for copy in store.damaged_copies():
    st.warning(f"The feedback database was found damaged and replaced by a fresh one; the damaged file is kept at "
               f"`{copy}`. Move or delete it once looked at. / 反馈数据库曾损坏并已重新创建，损坏的文件保存在 "
               f"`{copy}`，查看后请移走或删除。")

try:
    per_day = queries.questions_per_day(store)
except StoreError as e:
    st.error(f"Feedback database unavailable / 反馈数据库不可用: {e}")
    st.stop()

if per_day.empty:
    st.info("No questions yet. / 还没有任何提问。")
    st.stop()

overall = queries.answered_share(store, per_day=False).iloc[0]
share_per_day = queries.answered_share(store)
by_kind = queries.questions_by_kind(store)
unanswered = int(overall["questions"] - overall["answered"])

st.header("Questions over time / 提问趋势")
left, middle, right = st.columns(3)
left.metric("Questions / 提问数", f"{int(overall['questions']):,}")
middle.metric("Answered / 已回答", f"{int(overall['answered']):,}")
right.metric("Share answered / 回答率", f"{overall['share']:.0%}")
st.caption(f"Answered means anything but declined, empty or not understood: {int(overall['answered']):,} answered "
           f"+ {unanswered:,} not = {int(overall['questions']):,}. / 已回答 = 除拒答、空白、无法理解之外的一切。")
st.dataframe(readable(by_kind), hide_index=True, column_config={
    "kind": "kind / 类型", "answered": "answered / 已回答", "questions": "questions / 提问数"})
chart_left, chart_right = st.columns(2)
with chart_left:
    st.caption("Questions per day (UTC) / 每日提问数（UTC）")
    # bars, not a line: a line needs two days before it shows anything
    st.bar_chart(per_day, x="day", y="questions", x_label="day (UTC) / 日期", y_label="questions / 提问数")
with chart_right:
    st.caption("Share answered per day, % / 每日回答率（%）")
    percent = share_per_day.assign(percent=(share_per_day["share"] * 100).round(1))
    st.bar_chart(percent, x="day", y="percent", x_label="day (UTC) / 日期", y_label="% answered / 回答率 %")

st.header("Most asked / 最常见")
for column, (caption, key, frame) in zip(st.columns(2), [
        ("Topics / 主题", "topic", queries.top_topics(store, 10)),
        ("Providers / 运营商", "provider", queries.top_providers(store, 10))], strict=True):
    with column:
        st.caption(caption)
        if frame.empty:
            st.write("—")
        else:
            # With horizontal=True the x column runs down the side: x_label names it, y_label the counts.
            st.bar_chart(readable(frame), x=key, y="questions", horizontal=True, sort="-questions",
                         x_label=caption, y_label="questions / 提问数")

st.header("Declined questions / 未能回答的问题")
st.caption("What the knowledge base is missing: most frequent first. / 知识库待补充的内容，按出现次数排序。")
declined = queries.declined_questions(store, 50)
if declined.empty:
    st.write("None yet. / 暂无。")
else:
    st.dataframe(readable(declined), hide_index=True, width="stretch")

st.header("Feedback / 用户反馈")
by_provider = queries.feedback_by_provider(store)
by_entry = queries.feedback_by_entry(store)
if by_provider.empty:
    st.write("No ratings yet. / 暂无评价。")
else:
    # one under the other: side by side, the share column was cut off at laptop width
    st.caption("Per provider / 按运营商")
    st.dataframe(readable(by_provider), hide_index=True, width="stretch", column_config=SHARE_COLUMN)
    st.bar_chart(readable(by_provider), x="provider", y=["thumbs_up", "thumbs_down"],
                 color=["#2e7d32", "#c62828"], horizontal=True, x_label="provider / 运营商",
                 y_label="ratings / 评价数")
    st.caption("Per entry / 按条目")
    st.dataframe(readable(by_entry), hide_index=True, width="stretch", column_config=SHARE_COLUMN)

st.subheader("Comments / 用户留言")
notes = queries.comments(store, 100)
if notes.empty:
    st.write("No comments yet. / 暂无留言。")
else:
    notes = notes.assign(rating=notes["rating"].map({1: "👍", 0: "👎"}))
    st.dataframe(readable(notes), hide_index=True, width="stretch")

st.header("Export / 导出")
st.caption(f"Built when you click, for this signed-in session; its link stops working {CSV_LIFETIME_S} s later. / "
           f"点击时生成，仅限当前登录会话；下载链接 {CSV_LIFETIME_S} 秒后失效。")
st.download_button("Download all as CSV / 下载全部 CSV", data=csv_for(fingerprint(expected)), on_click="ignore",
                   file_name=f"feedback-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv", mime="text/csv")
