"""Insights / 数据洞察: what users asked and how they rated the answers, for the operator only."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from retrieval.settings import Settings
from retrieval.store.feedback import FeedbackError, FeedbackStore

LOGIN_KEY = "insights_operator"
SHARE_COLUMN = {"share_positive": st.column_config.NumberColumn("👍 share / 好评率", format="percent")}


def operator_password(settings: Settings) -> str:
    """The secrets file wins over the environment, so a deployment can keep it out of the process env."""
    try:
        value = st.secrets.get("operator_password")
    except FileNotFoundError:  # no secrets file at all, or one that does not parse: both subclass it
        value = None
    return str(value) if value else settings.operator_password


def fingerprint(password: str) -> str:
    # Remembering a digest instead of a flag logs everyone out as soon as the password is changed.
    return hashlib.sha256(password.encode()).hexdigest()


@st.cache_resource(on_release=FeedbackStore.close)
def open_store(path: Path) -> FeedbackStore:
    """One store per database path for the whole server; the chat page's sessions share it."""
    return FeedbackStore(path)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    # A missing provider or entry shows as a dash rather than "nan".
    text = [column for column in frame.columns if pd.api.types.is_string_dtype(frame[column])]
    return frame.fillna(dict.fromkeys(text, "—"))


st.set_page_config(page_title="Insights / 数据洞察", page_icon="📊", layout="wide")
st.title("📊 Insights / 数据洞察")

settings = Settings.from_env()
expected = operator_password(settings)

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
        if hmac.compare_digest(typed.encode(), expected.encode()):
            st.session_state[LOGIN_KEY] = fingerprint(expected)
            st.rerun()
        st.error("Wrong password. / 密码错误。")
    st.stop()

try:
    store = open_store(settings.feedback_db)
    per_day = store.questions_per_day()
except FeedbackError as e:
    st.error(f"Feedback database unavailable / 反馈数据库不可用: {e}")
    st.stop()

if store.recovered_from is not None:
    st.warning(f"The feedback database was damaged and has been restarted; the old file is kept at "
               f"`{store.recovered_from}`. / 反馈数据库已损坏并重新创建，旧文件保存在 `{store.recovered_from}`。")

if per_day.empty:
    st.info("No questions yet. / 还没有任何提问。")
    st.stop()

overall = store.answered_share(per_day=False).iloc[0]
share_per_day = store.answered_share()

st.header("Questions over time / 提问趋势")
left, middle, right = st.columns(3)
left.metric("Questions / 提问数", f"{int(overall['questions']):,}")
middle.metric("Answered / 已回答", f"{int(overall['answered']):,}")
right.metric("Share answered / 回答率", f"{overall['share']:.0%}")
chart_left, chart_right = st.columns(2)
with chart_left:
    st.caption("Questions per day (UTC) / 每日提问数（UTC）")
    # bars, not a line: a line needs two days before it shows anything
    st.bar_chart(per_day, x="day", y="questions", x_label="day", y_label="questions")
with chart_right:
    st.caption("Share answered per day / 每日回答率")
    st.bar_chart(share_per_day, x="day", y="share", x_label="day", y_label="share answered")

st.header("Most asked / 最常见")
for column, (caption, key, frame) in zip(st.columns(2), [
        ("Topics / 主题", "topic", store.top_topics(10)),
        ("Providers / 运营商", "provider", store.top_providers(10))], strict=True):
    with column:
        st.caption(caption)
        if frame.empty:
            st.write("—")
        else:
            st.bar_chart(frame, x=key, y="questions", horizontal=True, sort="-questions")

st.header("Declined questions / 未能回答的问题")
st.caption("What the knowledge base is missing: most frequent first. / 知识库待补充的内容，按出现次数排序。")
declined = store.declined_questions(50)
if declined.empty:
    st.write("None yet. / 暂无。")
else:
    st.dataframe(readable(declined), hide_index=True, width="stretch")

st.header("Feedback / 用户反馈")
by_provider = store.feedback_by_provider()
by_entry = store.feedback_by_entry()
if by_provider.empty:
    st.write("No ratings yet. / 暂无评价。")
else:
    # one under the other: side by side, the share column was cut off at laptop width
    st.caption("Per provider / 按运营商")
    st.dataframe(readable(by_provider), hide_index=True, width="stretch", column_config=SHARE_COLUMN)
    st.bar_chart(readable(by_provider), x="provider", y=["thumbs_up", "thumbs_down"],
                 color=["#2e7d32", "#c62828"], horizontal=True, x_label="ratings", y_label="provider")
    st.caption("Per entry / 按条目")
    st.dataframe(readable(by_entry), hide_index=True, width="stretch", column_config=SHARE_COLUMN)

st.header("Export / 导出")
# A callable, so the (possibly large) file is only built when someone actually downloads it.
st.download_button("Download all as CSV / 下载全部 CSV", data=store.export_csv, on_click="ignore",
                   file_name=f"feedback-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv", mime="text/csv")
