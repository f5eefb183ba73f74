"""Insights / 数据洞察: what users asked and how they rated the answers, for the operator only; and the inbox,
where the operator turns what went wrong into knowledge (retrieval/learn does the work).

Not listed in the users' navigation (app.py hides it); reachable at /insights, behind the operator password.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from retrieval.knowledge import DRAFTS_DIR, KnowledgeError, load_knowledge
from retrieval.learn.effect import Effect
from retrieval.learn.files import Action, patch
from retrieval.learn.inbox import Group, gather
from retrieval.learn.live import Job, Live, live
from retrieval.learn.views import ACTION_LABELS, effect_table, entry_choices, entry_label, group_rows, when
from retrieval.operator import chosen_password, guard
from retrieval.serving.embedder import ModelError
from retrieval.serving.index import IndexStoreError
from retrieval.serving.text import escape_markdown
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


POLL_S = 2.0  # how often a running job's progress is redrawn


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

# -- the inbox ------------------------------------------------------------------------------------------
def job_lines(job: Job) -> str:
    return "\n".join(f"- {escape_markdown(m)}" for m in job.messages[-4:]) or "- …"


def show_effect(effect: Effect, kb) -> None:
    st.dataframe(effect_table(effect), hide_index=True, width="stretch")
    for note in effect.notes:
        st.caption(note)
    changed = [c for c in effect.groups if c.changed]
    if changed:
        st.markdown("**What it changes in the inbox / 对待处理问题的影响**\n\n" + "\n".join(
            f"- {escape_markdown(c.label)}: answered {c.answered_before}/{c.asked} → {c.answered_after}/{c.asked}"
            f" ({entry_label(kb, c.entry_before)} → {entry_label(effect.kb, c.entry_after)})" for c in changed))
    for question in effect.in_test_set:
        st.warning(f"“{question}” is in the frozen test set: filing it scores the test set on its own question. / "
                   f"该问题在冻结测试集中，归档后测试分数将不再可信。")
    name = effect.action.path.rsplit("/", 1)[-1]
    left, right = st.columns(2)
    left.download_button("Download the file / 下载文件", data=effect.text, file_name=name, mime="text/yaml",
                         on_click="ignore")
    right.download_button("Download as a patch for git / 下载 git 补丁", data=patch(effect.action, effect.text),
                          file_name=name.replace(".yaml", ".patch"), mime="text/x-diff", on_click="ignore")


def measured_panel(hub: Live, kb, group: Group) -> None:
    """The measurement of the chosen action and, once done, its effect and the button that saves it."""
    measured = state.get("inbox_measured")
    if not measured or measured["group"] != group.id:
        return
    job = hub.jobs.get(measured["job"])
    if job is None:
        return
    if not job.over:
        st.info(f"Measuring on a copy of the knowledge… the chat keeps answering as before. / 正在知识库副本上评估…"
                f"\n\n{job_lines(job)}")
        return
    if job.status == "failed":
        st.error(f"The action cannot be saved / 无法保存: {job.error}")
        return
    effect: Effect = job.result
    st.markdown(f"**Effect of: {ACTION_LABELS[effect.action.kind]}**"
                + (f" → {escape_markdown(entry_label(kb, effect.action.entry_id))}"
                   if effect.action.kind == "attach" else "") + f" · measured in {effect.seconds:.0f} s")
    show_effect(effect, kb)
    worse = effect.worse()
    if worse:
        st.warning("Scores that would drop / 会下降的分数: " + "; ".join(worse))
    anyway = st.checkbox("Save all the same / 仍然保存", key=f"anyway-{job.id}") if worse else True
    if state.get("inbox_saved_from") != job.id:  # one save per measurement
        st.button("Save / 保存", type="primary", key=f"save-{job.id}", disabled=not anyway,
                  on_click=start_save, args=(hub, job.id, effect, measured["interactions"]))


def start_save(hub: Live, measured_job: str, effect: Effect, interactions: list[int]) -> None:
    state.inbox_saved_from = measured_job
    state.inbox_saving = hub.save(effect, open_store(Settings.from_env()), interactions).id


def start_measure(hub: Live, group: Group, groups: list[Group]) -> None:
    kind = state.inbox_action
    entry = state.get("inbox_entry") if kind == "attach" else (group.suggested()[:1] or [None])[0]
    try:
        action = Action(kind, group.id, group.questions(), state.get("inbox_actor", ""), entry_id=entry)
    except ValueError as exc:
        state.inbox_problem = str(exc)
        return
    state.inbox_problem = None
    state.inbox_measured = {"group": group.id, "job": hub.measure(action, groups).id,
                            "interactions": [i.interaction_id for i in group.items]}


def saving_panel(hub: Live) -> None:
    job = hub.jobs.get(state.get("inbox_saving", ""))
    if job is None:
        return
    if not job.over:
        st.info(f"Saving; the chat answers from the previous index until the new one is in. / 正在保存，新索引就绪前"
                f"聊天仍用旧索引回答。\n\n{job_lines(job)}")
    elif job.status == "failed":
        st.error(f"Not saved / 未保存: {job.error}")
    else:
        st.success("Saved / 已保存. " + " · ".join(escape_markdown(m) for m in job.messages))
        if state.get("inbox_refreshed") != job.id:  # once: the saved group leaves the table above
            state.inbox_refreshed = job.id
            state.inbox_measured = None
            st.rerun(scope="app")


def progress_panel(hub: Live, kb, group: Group | None) -> None:
    if group is not None:
        measured_panel(hub, kb, group)
    saving_panel(hub)
    reload = hub.jobs.get(state.get("inbox_reload", ""))
    if reload is not None and not reload.over:
        st.info(f"Loading the knowledge folder again… / 正在重新载入知识库…\n\n{job_lines(reload)}")


def running(hub: Live) -> bool:
    ids = [state.get("inbox_saving"), state.get("inbox_reload"), (state.get("inbox_measured") or {}).get("job")]
    return any(job_id in hub.jobs and not hub.jobs[job_id].over for job_id in ids if job_id)


def act_on_reports(store, reports: pd.DataFrame, entry_id: str, action: str) -> None:
    chosen = reports[reports["entry_id"] == entry_id]
    try:
        store.record_action(actor=state.get("inbox_actor", ""), action=action, group_id=f"entry:{entry_id}",
                            questions=chosen["text"].tolist(), entry_id=entry_id,
                            reports=[int(r) for r in chosen["report_id"]])
        state.inbox_problem = None
    except (ValueError, StoreError) as exc:
        state.inbox_problem = str(exc)


def inbox(store, settings: Settings) -> None:
    st.header("Inbox / 待处理")
    st.caption("Declined questions, answers rated 👎, ask-backs left unanswered and close calls, grouped by meaning."
               " File a group as phrasings of an entry, as out of scope, or as a new entry to write; its effect on the"
               " development and test sets is measured before it is saved. / 按含义分组的待处理问题：归入条目、标为"
               "范围外或请人新写条目；保存前先评估对开发集和测试集的影响。")
    hub = live(settings)
    try:
        assistant = hub.assistant()
        groups = gather(store, lambda q: assistant.understand(q).matched, hub.embedder().embed_queries)
    except (KnowledgeError, ModelError, IndexStoreError) as exc:
        st.error(f"The assistant cannot load, so the inbox cannot be grouped / 助手无法载入：{exc}")
        return
    kb = assistant.kb
    if hub.changed_on_disk() and not running(hub):
        st.warning("The knowledge folder changed since the chat loaded it (a file from the command line, an edit)."
                   " / 知识库文件已更改，聊天仍在使用旧版本。")
        st.button("Load it now / 立即载入", on_click=lambda: state.update(inbox_reload=hub.reload().id))
    st.text_input("Your name, recorded with every action / 你的名字（随每个操作记录）", key="inbox_actor")
    if state.get("inbox_problem"):
        st.error(state.inbox_problem)
    if groups:
        st.dataframe(group_rows(groups), hide_index=True, width="stretch")
    else:
        st.write("Nothing waiting. / 暂无待处理的问题。")
    by_id = {g.id: g for g in groups}
    chosen_id = st.selectbox("Act on a group / 处理一组问题", list(by_id), index=None, key="inbox_group",
                             format_func=lambda gid: by_id[gid].summary(), placeholder="Choose a group… / 选择一组…")
    group = by_id.get(chosen_id)
    if group is not None:
        hub.warm_up()  # scores as they are now, in the background, while the operator decides
        st.markdown("\n".join(f"- {escape_markdown(text)} ×{n}" for text, n in group.wordings()[:10]))
        for comment in group.comments()[:5]:
            st.caption(f"👎 {comment}")
        kind = st.radio("Action / 处理方式", list(ACTION_LABELS), format_func=ACTION_LABELS.get, horizontal=True,
                        key="inbox_action")
        if kind == "attach":
            st.selectbox("Entry, the assistant's suggestions first (type to search) / 条目（可输入搜索）",
                         entry_choices(group, kb), index=0, key="inbox_entry",
                         format_func=lambda e: entry_label(kb, e))
        st.button("Measure the effect / 评估影响", key="inbox_measure", disabled=not state.get("inbox_actor"),
                  on_click=start_measure, args=(hub, group, groups))
    st.fragment(run_every=POLL_S if running(hub) else None)(progress_panel)(hub, kb, group)

    reports = queries.open_reports(store)
    st.subheader("Reported mistakes / 用户报告的错误")
    if reports.empty:
        st.write("None. / 暂无。")
    else:
        shown = reports.assign(entry=reports["entry_id"].map(lambda e: entry_label(kb, e)),
                               reported=reports["reported_at"].map(when))
        st.dataframe(shown[["reported", "entry", "text", "question"]], hide_index=True, width="stretch")
        entry_id = st.selectbox("Reports about / 报告所涉条目", sorted(set(reports["entry_id"])),
                                format_func=lambda e: entry_label(kb, e), key="inbox_report_entry")
        left, right = st.columns(2)
        disabled = not state.get("inbox_actor")
        left.button("Fixed / 已修正", key="report-fixed", disabled=disabled, on_click=act_on_reports,
                    args=(store, reports, entry_id, "fixed"))
        right.button("Dismiss / 忽略", key="report-dismissed", disabled=disabled, on_click=act_on_reports,
                     args=(store, reports, entry_id, "dismissed"))
    drafts = sorted((settings.knowledge_dir / DRAFTS_DIR).glob("*.yaml"))
    if drafts:
        st.caption(f"Drafts waiting for a person to write and source them / 待人工撰写的草稿（{DRAFTS_DIR}/）: "
                   + ", ".join(f"`{d.name}`" for d in drafts))
    history = queries.actions(store, 20)
    if not history.empty:
        with st.expander("What operators did / 操作记录"):
            st.dataframe(history[["acted_at", "actor", "action", "group_id", "entry_id", "file"]].assign(
                acted_at=history["acted_at"].map(when)), hide_index=True, width="stretch")


state = st.session_state
inbox(store, settings)

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
