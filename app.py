"""The chat page: lays out the conversation and holds session state; retrieval/ decides everything.

What a new question costs the server stays the same however long the conversation grows. Each turn is a
fragment of its own, laid out in advance as an empty slot: a question reruns only the next empty slot (and the
footer under it), a click inside an answer reruns only that answer, and a walkthrough step only the footer.
Slots come in blocks of TURNS_PER_BLOCK, each block a fragment too: the first question of a block reruns that
block, which lays out its slots. The whole page reruns on a visit, a language switch, a new conversation, or
when the spare blocks run out (every SPARE_BLOCKS * TURNS_PER_BLOCK questions).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import streamlit as st

from chat_resources import get_assistant
from retrieval import Kind, KnowledgeError, Settings
from retrieval.learn.live import serving
from retrieval.serving.conversation import Conversation, Turn, turn_key
from retrieval.serving.embedder import ModelError
from retrieval.serving.index import IndexStoreError
from retrieval.serving.safety import mask_secrets
from retrieval.serving.walkthrough import Walkthrough, can_walk, stays_open, view
from retrieval.store import FeedbackError, FeedbackStore, open_store

log = logging.getLogger(__name__)

TURNS_PER_BLOCK = 20  # turn slots a block lays out at once
SPARE_BLOCKS = 4      # empty blocks laid out ahead; when they run out, the whole page reruns once
SHOWN_CHOICES = 6    # the likeliest providers of an ask-back; the rest fold away
NO_PROVIDER = "— 未选择 / none —"
CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")

# The page's own words (the assistant's are in knowledge/messages.yaml).
UI: dict[str, dict[str, str]] = {
    "title": {"zh": "📱 美国手机号充值助手", "en": "📱 US phone top-up helper"},
    "subtitle": {"zh": "Google Voice · T-Mobile · Mint · Tello · AT&T … 答案全部来自核对过的知识库，不是 AI 生成。",
                 "en": "Google Voice · T-Mobile · Mint · Tello · AT&T … Answers come word for word from a checked "
                       "knowledge base, never generated."},
    "language": {"zh": "语言", "en": "Language"},
    "new": {"zh": "🆕 新对话", "en": "🆕 New conversation"},
    "thinking": {"zh": "正在查找…", "en": "Looking it up…"},
    "general_advice": {"zh": "通用做法（选运营商之前可以先看）", "en": "General advice (while you pick a provider)"},
    "helpful": {"zh": "这个回答有帮助吗？", "en": "Did this help?"},
    "thumbs_up": {"zh": "👍 有帮助", "en": "👍 Helpful"},
    "thumbs_down": {"zh": "👎 没帮助", "en": "👎 Not helpful"},
    "comment_saved": {"zh": "已收到你的补充，谢谢！", "en": "Thanks, your note was saved."},
    "rating_saved": {"zh": "已记录，谢谢！", "en": "Thanks for the feedback."},
    "rating_undone": {"zh": "已撤销评价。", "en": "Rating removed."},
    "your_comment": {"zh": "你的补充（已保存，卡号等已遮住）", "en": "Your note (saved; card numbers masked)"},
    "not_saved": {"zh": "（记录暂时写不进去，这条会在恢复后补存；问答不受影响。）",
                  "en": "(The records can't be written just now; this is kept and saved when they are back.)"},
    "store_down": {"zh": "记录暂时不可用：问答照常，评价会在恢复后补存，刷新后可能无法恢复这次对话。",
                   "en": "Records are unavailable for now: answers work as usual, ratings are saved when they are "
                         "back, and a reload may not bring this conversation back."},
    "walk_continue": {"zh": "继续引导", "en": "Continue the walkthrough"},
    "walk_done": {"zh": "已完成", "en": "Finished"},
    "change_provider": {"zh": "更换运营商", "en": "Change provider"},
    "pick_provider": {"zh": "选择运营商", "en": "Pick a provider"},
    "provider": {"zh": "运营商", "en": "Provider"},
    "you": {"zh": "你说", "en": "You said"},
    "assistant": {"zh": "助手回答", "en": "The assistant says"},
    "copy": {"zh": "可复制：", "en": "To copy:"},
    "report": {"zh": "⚠️ 报告错误", "en": "⚠️ Report a mistake"},
    "report_prompt": {"zh": "哪里不对？数字错了、步骤过时、链接失效…",
                      "en": "What is wrong? A wrong number, an outdated step, a dead link…"},
    "report_send": {"zh": "发送", "en": "Send"},
    "report_saved": {"zh": "已收到，会转给维护这条答案的人，谢谢！",
                     "en": "Thanks: this goes to the person who keeps this answer up to date."},
    "reported": {"zh": "你报告的错误（已保存，卡号等已遮住）", "en": "Your report (saved; card numbers masked)"},
}
LANGUAGE_NAMES = {"auto": "自动 Auto", "zh": "中文", "en": "English"}

# Touch-sized buttons, readable captions, a title that does not break inside a word on a phone.
STYLE = """<style>
.stButton button, [data-testid="stButtonGroup"] button, [data-testid="stPopover"] button,
[data-testid="stExpander"] summary { min-height: 44px; }
[data-testid="stChatInputSubmitButton"] { min-height: 44px; min-width: 44px; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p,
[data-testid="stWidgetLabel"] p { color: #4b4d57 !important; }
h1 { word-break: keep-all; }
@media (max-width: 640px) { h1 { font-size: 1.6rem !important; } }
</style>"""

# Once per page: tell screen readers and the browser the page's language, and who speaks in each bubble.
PAGE_SCRIPT = """<script>
(() => {
  const doc = window.parent ? window.parent.document : document;
  doc.documentElement.lang = %(lang)s;
  doc.__chatNames = %(names)s;  // read at every call: a language switch changes them
  const label = () => doc.querySelectorAll('[data-testid="stChatMessage"]').forEach(m => {
    const names = doc.__chatNames;
    const who = m.querySelector('[data-testid="stChatMessageAvatarUser"]') ? names.user : names.assistant;
    if (m.getAttribute('aria-label') !== who) { m.setAttribute('aria-label', who); m.setAttribute('role', 'group'); }
  });
  label();
  if (!doc.__chatLabels) {
    let queued = false;  // at most once a frame, however many elements arrive
    doc.__chatLabels = new MutationObserver(() => {
      if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; label(); }); }
    });
    doc.__chatLabels.observe(doc.body, {childList: true, subtree: true});
  }
})();
</script>"""

# After a new answer: bring the top of the question just asked into view (not the bottom of a long answer).
SCROLL_SCRIPT = """<script>
(() => {
  const doc = window.parent ? window.parent.document : document;
  const show = () => {
    const mine = doc.querySelectorAll('[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])');
    const target = %(target)s === 'walk' ? doc.querySelector('.st-key-walkbox') : mine[mine.length - 1];
    if (!target) return;
    const header = doc.querySelector('[data-testid="stHeader"]');
    target.style.scrollMarginTop = ((header ? header.offsetHeight : 0) + 8) + 'px';
    target.scrollIntoView({block: 'start'});
  };
  // Streamlit keeps a chat scrolled to its bottom while content arrives, and on a busy machine the rest of
  // the answer may arrive late: keep the question in place for two seconds, unless the user scrolls.
  let left = 20;
  const stop = () => { left = 0; };
  ['wheel', 'touchstart', 'keydown', 'mousedown'].forEach(e => doc.addEventListener(e, stop, {once: true}));
  const tick = () => { if (left-- > 0) { show(); setTimeout(tick, 100); } };
  requestAnimationFrame(tick);
})();
</script>"""

st.set_page_config(page_title="美国手机号充值助手 · US top-up helper", page_icon="📱")
state = st.session_state


# -- resources ----------------------------------------------------------------------------------------
def load_resources() -> None:
    """The assistant and the store, as this module's globals for the callbacks and fragments of this run."""
    global assistant, kb, settings, store
    try:
        assistant = serving(get_assistant)  # the one switched in last, once the operator saved an action
    except (KnowledgeError, ModelError, IndexStoreError) as exc:
        st.error(f"The assistant cannot start / 助手无法启动：\n\n{exc}")
        st.stop()
    kb = assistant.kb
    settings = Settings.from_env()
    store = open_store(settings)  # the process's one store, shared with the insights page; never raises for I/O


NOT_SAVED = object()


def with_store(call: Callable[[FeedbackStore], Any]) -> Any:
    """`call(store)`, or NOT_SAVED when the store fails: the page goes on without it. (A store that cannot
    write just now keeps the write in memory and says so in `store.problem`; this is for anything worse.)"""
    try:
        return call(store)
    except FeedbackError as exc:
        log.warning("feedback store: %s", exc)
        return NOT_SAVED


def saved_later() -> bool:
    """Whether what was just written waits in memory for the database to come back."""
    return store.problem is not None


# -- state --------------------------------------------------------------------------------------------
def browser_language() -> str:
    """The browser's language (navigator.language, else Accept-Language): Chinese or, for anything else, English."""
    locale = st.context.locale or ""
    if not locale:
        header = (st.context.headers or {}).get("Accept-Language", "") if st.context.headers else ""
        locale = header.split(",")[0].strip()
    if not locale:
        return "zh"
    return "zh" if locale.lower().startswith("zh") else "en"


def start_session() -> None:
    """A new session: the conversation named in the URL (after a reload), or a new one with a new id."""
    cid = st.query_params.get("c", "")
    conv = None
    if CONVERSATION_ID.fullmatch(cid):
        head = with_store(lambda s: s.load_conversation(cid))
        if head not in (None, NOT_SAVED):
            conv = Conversation.restore(
                head, lambda n: with_store(lambda s: s.load_conversation(turn_key(cid, n))), kb)
    else:
        cid = uuid.uuid4().hex
    st.query_params["c"] = cid
    state.cid = cid
    state.conv = conv or Conversation()
    state.pending = []
    state.browser_language = browser_language()
    state.language = state.conv.language
    for n, turn in enumerate(state.conv.turns):
        state[f"fb-{n}"] = turn.rating


def ui_language() -> str:
    return state.conv.shown_language(state.browser_language)


def ui(key: str, language: str | None = None) -> str:
    return UI[key][language or ui_language()]


def t(key: str, **values) -> str:
    return kb.message(key, ui_language(), **values)


def save_head() -> None:
    with_store(lambda s: s.save_conversation(state.cid, state.conv.head_json()))


def save_turn(n: int) -> bool:
    return with_store(lambda s: s.save_conversation(turn_key(state.cid, n), state.conv.turns[n].to_json())) \
        is not NOT_SAVED


# -- actions (callbacks run before the fragment or page they belong to is drawn again) ----------------
def ask(request: dict) -> None:
    """Queue a question (typed, or a button's) and rerun only the slots (or the block) that will show it."""
    state.pending.append(request)
    first = len(state.conv.turns)
    targets = []
    for n in range(first, first + len(state.pending)):
        block = n // TURNS_PER_BLOCK
        if block in state.active_blocks:
            targets.append(f"turn-{n}")
        elif block < state.blocks:
            targets.append(f"block-{block}")
        else:
            return  # no empty block left: the whole page reruns and lays out new ones
    st.rerun([*dict.fromkeys(targets), "footer"])


def submitted() -> None:
    text = state.get("question")
    if isinstance(text, str) and text.strip():
        # Cut before anything scans it; one character over the limit, so the assistant still says it cut.
        text = text[:settings.max_question_chars + 1]
        ask({"question": text, "said": mask_secrets(text[:settings.max_question_chars]).text.strip()})


def choose(choice) -> dict:
    return {"question": choice.question, "provider": choice.provider, "entry_id": choice.entry_id}


def start_walk(entry_id: str, language: str) -> None:
    conv: Conversation = state.conv
    conv.walk, conv.walk_open = Walkthrough(entry_id, language), True
    state.walk_fresh = True
    save_head()
    st.rerun("footer")


def move_walk(how: str) -> None:
    conv: Conversation = state.conv
    if conv.walk is None:  # a second click on a box already closed
        return
    conv.walk = None if how == "exit" else getattr(conv.walk, how)()
    save_head()


def open_walk() -> None:
    state.conv.walk_open = True
    state.walk_fresh = True
    save_head()


def rate(n: int) -> None:
    turn: Turn = state.conv.turns[n]
    rating = state.get(f"fb-{n}")
    if turn.interaction is None:
        state.toast = ui("not_saved", turn.answer.language)
        return
    if rating is None:
        done = with_store(lambda s: s.clear_feedback(interaction_id=turn.interaction))
        turn.comment = ""
    else:
        done = with_store(lambda s: s.log_feedback(interaction_id=turn.interaction, rating=int(rating),
                                                   comment=turn.comment or None))
    saved = done is not NOT_SAVED
    turn.rating = rating if saved else turn.rating
    if saved:
        save_turn(n)
    state.toast = ui("rating_undone" if rating is None else "rating_saved", turn.answer.language) \
        if saved and not saved_later() else ui("not_saved", turn.answer.language)


def comment(n: int) -> None:
    turn: Turn = state.conv.turns[n]
    text = (state.get(f"comment-{n}") or "").strip()
    state[f"comment-{n}"] = ""          # the box empties; what was kept is shown, masked, under it
    if not text or turn.interaction is None or turn.rating is None:
        return
    masked = mask_secrets(text[:2000]).text
    done = with_store(lambda s: s.log_feedback(interaction_id=turn.interaction, rating=int(turn.rating),
                                               comment=masked))
    if done is NOT_SAVED:
        state.toast = ui("not_saved", turn.answer.language)
        return
    turn.comment = masked
    save_turn(n)
    state.toast = ui("not_saved" if saved_later() else "comment_saved", turn.answer.language)


def report(n: int) -> None:
    """"Report a mistake" on an answer: what is wrong, with the entry it showed, for the operator's inbox."""
    turn: Turn = state.conv.turns[n]
    text = (state.get(f"report-{n}") or "").strip()
    state[f"report-{n}"] = ""
    if not text or not turn.answer.entry_id:
        return
    masked = mask_secrets(text[:2000]).text
    done = with_store(lambda s: s.report_mistake(session_id=state.cid, entry_id=turn.answer.entry_id, text=masked,
                                                 interaction_id=turn.interaction))
    if done is NOT_SAVED:
        state.toast = ui("not_saved", turn.answer.language)
        return
    state[f"reported-{n}"] = masked
    state.toast = ui("not_saved" if saved_later() else "report_saved", turn.answer.language)


def pick_provider(names: dict[str, str]) -> None:
    state.conv.provider = names.get(state.provider_picker)
    save_head()


def pick_language() -> None:
    state.conv.language = state.language or "auto"
    save_head()


def new_conversation() -> None:
    for key in [k for k in state if isinstance(k, str) and k.startswith(("fb-", "comment-", "report"))]:
        del state[key]
    state.conv = Conversation(language=state.conv.language)
    state.pending = []
    state.cid = uuid.uuid4().hex
    st.query_params["c"] = state.cid


# -- drawing ------------------------------------------------------------------------------------------
def show_toast() -> None:
    if state.get("toast"):
        st.toast(state.pop("toast"))


def choice_buttons(choices, key: str, tooltips: bool = False) -> None:
    with st.container(horizontal=True, gap="small"):
        for n, choice in enumerate(choices):
            request = {**choose(choice), "said": choice.label}
            # wrap: in a row Streamlit would cut a long label off with "…"
            st.button(choice.label, key=f"{key}-{n}", on_click=ask, args=(request,), wrap=True,
                      help=choice.label if tooltips else None)


def answer_choices(answer, n: int) -> None:
    tooltips = answer.kind is Kind.DECLINE
    choice_buttons(answer.choices[:SHOWN_CHOICES], f"choice-{n}", tooltips)
    if len(answer.choices) > SHOWN_CHOICES:
        with st.expander(kb.message("more_choices", answer.language)):
            choice_buttons(answer.choices[SHOWN_CHOICES:], f"more-{n}", tooltips)


def walk_button(answer, n: int) -> None:
    if answer.entry_id and answer.has_steps and can_walk(kb, answer.entry_id):
        st.button(f"👣 {kb.message('walk_me', answer.language)}", key=f"walk-{n}", type="primary",
                  on_click=start_walk, args=(answer.entry_id, answer.language))


def render_answer(turn: Turn, n: int) -> None:
    answer = turn.answer
    lang = answer.language
    for notice in answer.notices:
        st.warning(notice)
    if answer.kind is Kind.ASK_PROVIDER and answer.lead:
        # The question and its buttons first; the general advice folded below them.
        st.markdown(answer.lead)
        answer_choices(answer, n)
        if answer.details:
            with st.expander(ui("general_advice", lang)):
                st.markdown(answer.details)
                walk_button(answer, n)
    else:
        st.markdown(answer.markdown)
        answer_choices(answer, n)
        walk_button(answer, n)
    if answer.related:
        st.caption(kb.message("related_heading", lang))
        with st.container(horizontal=True, gap="small"):
            for m, choice in enumerate(answer.related):
                # the entry's title: a proper sentence, where its first stored question may read like a search
                st.button(choice.label, key=f"related-{n}-{m}", on_click=ask, wrap=True,
                          args=({**choose(choice), "said": choice.label},))


def render_feedback(turn: Turn, n: int) -> None:
    lang = turn.answer.language
    if turn.interaction is None:
        st.caption(ui("not_saved", lang))
        return
    st.pills(ui("helpful", lang), [1, 0], key=f"fb-{n}", on_change=rate, args=(n,), label_visibility="collapsed",
             format_func=lambda v: ui("thumbs_up" if v == 1 else "thumbs_down", lang))
    if turn.rating is not None:
        st.text_input(kb.message("comment_prompt", lang), key=f"comment-{n}", on_change=comment, args=(n,),
                      max_chars=2000)
        if turn.comment:
            st.caption(f"{ui('your_comment', lang)}: {turn.comment}")


def render_report(turn: Turn, n: int) -> None:
    """On every answer that showed an entry: a wrong number, an outdated step or a dead link goes to the inbox."""
    if not turn.answer.entry_id:
        return
    lang = turn.answer.language
    with st.popover(ui("report", lang)), st.form(f"report-form-{n}", border=False):
        # a text area (several lines), so the comment box stays the answer's one text input
        st.text_area(ui("report_prompt", lang), key=f"report-{n}", max_chars=2000, height=90)
        st.form_submit_button(ui("report_send", lang), on_click=report, args=(n,))
    if state.get(f"reported-{n}"):
        st.caption(f"{ui('reported', lang)}: {state[f'reported-{n}']}")


def render_turn(turn: Turn, n: int) -> None:
    with st.chat_message("user"):
        st.text(turn.said)   # what the user typed, as text: no Markdown, no HTML, no icons, no links
    with st.chat_message("assistant"):
        render_answer(turn, n)
        render_feedback(turn, n)
        render_report(turn, n)


def answer_now(request: dict, n: int) -> None:
    """Show the question at once, then the answer, then remember and save it."""
    conv: Conversation = state.conv
    said = request["said"]
    with st.chat_message("user"):
        st.text(said)
    with st.chat_message("assistant"):
        with st.spinner(ui("thinking")):
            language = conv.answer_language(request["question"], state.browser_language)
            # Asked now, not at the page's last full run: only this slot reruns, and the operator may have
            # switched in a new index since.
            current = serving(get_assistant)
            if request.get("entry_id") in kb.by_id:
                answer = current.answer_entry(request["entry_id"], language or ui_language(), request["question"])
            else:
                answer = current.ask(request["question"], provider=request.get("provider") or conv.provider,
                                       language=language, topic=conv.topic)
        turn = Turn(said, answer)
        conv.turns.append(turn)
        conv.remember(answer)
        if conv.walk is not None and conv.walk_open and not stays_open(kb, conv.walk, answer):
            conv.walk_open = False
        render_answer(turn, n)   # before saving: a slow or broken store must not hold the answer back
        top = answer.hits[0] if answer.hits else None
        interaction = with_store(lambda s: s.log_interaction(
            session_id=state.cid, question=answer.question, language=answer.language, provider=answer.provider,
            kind=answer.kind.value, entry_id=answer.entry_id, topic=answer.topic, answered=answer.answered,
            score=top.score if top else None, offered=answer.hits))
        turn.interaction = None if interaction is NOT_SAVED else interaction
        if turn.interaction is not None and saved_later():
            st.caption(ui("not_saved", answer.language))
        render_feedback(turn, n)
        render_report(turn, n)
        if turn.interaction is not None:
            save_turn(n)
            save_head()
    st.html(SCROLL_SCRIPT % {"target": json.dumps("question")}, unsafe_allow_javascript=True)


def welcome() -> None:
    st.markdown(t("welcome"))
    with st.container(horizontal=True, gap="small"):
        for n, question in enumerate(t("starters").strip().splitlines()):
            st.button(question, key=f"starter-{n}", on_click=ask, wrap=True,
                      args=({"question": question, "said": question},))


def turn_slot(n: int) -> None:
    """Turn `n`: drawn if it exists, answered if it is the next one and a question waits, else empty."""
    conv: Conversation = state.conv
    show_toast()
    if n < len(conv.turns):
        render_turn(conv.turns[n], n)
    elif n == len(conv.turns) and state.pending:
        answer_now(state.pending.pop(0), n)
    elif n == 0:
        welcome()


def turn_block(block: int) -> None:
    """Slots for turns block * TURNS_PER_BLOCK onwards, laid out once the conversation reaches them."""
    start = block * TURNS_PER_BLOCK
    if block > 0 and start >= len(state.conv.turns) + len(state.pending):
        state.active_blocks.discard(block)
        return
    state.active_blocks.add(block)
    for n in range(start, start + TURNS_PER_BLOCK):
        st.fragment(turn_slot, key=f"turn-{n}")(n)


def walk_box() -> None:
    conv: Conversation = state.conv
    walk = conv.walk
    step = view(kb, walk)
    lang = walk.language
    if not conv.walk_open:
        label = f"👣 {ui('walk_continue', lang)}：{step.title} · {step.progress or ui('walk_done', lang)}"
        st.button(label, key="walk-open", on_click=open_walk)
        return
    with st.container(border=True, key="walkbox"):
        st.markdown(f"**👣 {step.title}**" + (f" · {step.progress}" if step.progress else ""))
        st.progress(min(step.number, step.total) / step.total)
        st.markdown(step.text)
        for code in step.copyable:
            st.code(code, language=None)
        if step.expect:
            st.caption(step.expect)
        if step.troubleshooting:
            st.warning(step.troubleshooting)
        if step.payment_help:
            with st.expander(kb.message("payment_help_heading", lang)):
                st.markdown(step.payment_help)
        if step.follow_up:
            choice = step.follow_up
            st.button(choice.label, key="walk-follow-up", on_click=ask, wrap=True,
                      args=({**choose(choice), "said": choice.label},))
        with st.container(horizontal=True, gap="small"):
            if not step.finished:
                st.button(f"✅ {kb.message('step_done', lang)}", key="walk-next", type="primary", wrap=True,
                          on_click=move_walk, args=("next",))
            if walk.step > 0:
                st.button(f"⬅️ {kb.message('step_back', lang)}", key="walk-back", on_click=move_walk, args=("back",),
                          wrap=True)
            if step.can_fail and not walk.failed:
                st.button(f"⚠️ {kb.message('step_failed', lang)}", key="walk-fail", on_click=move_walk,
                          args=("fail",), wrap=True)
            st.button(f"✖️ {kb.message('walk_exit', lang)}", key="walk-exit", on_click=move_walk, args=("exit",),
                      wrap=True)
    if state.pop("walk_fresh", False):
        st.html(SCROLL_SCRIPT % {"target": json.dumps("walk")}, unsafe_allow_javascript=True)


def footer() -> None:
    """Under the conversation: the walkthrough, and the provider the next question is about."""
    conv: Conversation = state.conv
    show_toast()
    if conv.walk is not None:
        walk_box()
    names = {kb.providers[p].name["en"]: p for p in kb.providers if p != "general"}
    label_of = {p: name for name, p in names.items()}
    if state.get("provider_picker") != label_of.get(conv.provider, NO_PROVIDER):
        state.provider_picker = label_of.get(conv.provider, NO_PROVIDER)
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        if conv.provider:
            st.markdown(f"{t('provider_now')}: **{kb.providers[conv.provider].name[ui_language()]}**")
        with st.popover(ui("change_provider" if conv.provider else "pick_provider")):
            st.selectbox(ui("provider"), [NO_PROVIDER, *names], key="provider_picker", on_change=pick_provider,
                         args=(names,))


def toolbar() -> None:
    """Language and a new conversation, at the top where a phone shows them (the sidebar hides there)."""
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.segmented_control(ui("language"), ["auto", "zh", "en"], key="language", required=True,
                             format_func=LANGUAGE_NAMES.get, on_change=pick_language, label_visibility="collapsed")
        st.button(ui("new"), key="new-conversation", on_click=new_conversation)


def chat() -> None:
    load_resources()
    if "conv" not in state:
        start_session()
    conv: Conversation = state.conv
    lang = ui_language()
    st.html(STYLE)
    st.html(PAGE_SCRIPT % {"lang": json.dumps("zh-CN" if lang == "zh" else "en"),
                           "names": json.dumps({"user": ui("you"), "assistant": ui("assistant")},
                                               ensure_ascii=False)},
            unsafe_allow_javascript=True)
    st.title(ui("title"), anchor=False)
    st.caption(ui("subtitle"))
    toolbar()
    if store.problem is not None:
        st.caption(ui("store_down"))
    state.blocks = (len(conv.turns) + len(state.pending)) // TURNS_PER_BLOCK + 1 + SPARE_BLOCKS
    state.active_blocks = set()
    for block in range(state.blocks):
        st.fragment(turn_block, key=f"block-{block}")(block)
    st.fragment(footer, key="footer")()
    # Both languages: the box is drawn with the whole page, and the conversation may switch language after.
    st.chat_input("输入你的问题… Ask a question…", key="question", max_chars=settings.max_question_chars,
                  on_submit=submitted)


page = st.navigation([st.Page(chat, title="美国手机号充值助手", icon="📱", default=True),
                      # for operators: reachable at /insights (behind its password), not listed for users
                      st.Page("pages/insights.py", title="Insights", icon="📊", url_path="insights")],
                     position="hidden")
page.run()
