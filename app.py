"""The chat page: lays out the conversation and holds session state; retrieval/ decides everything."""

from __future__ import annotations

import uuid

import streamlit as st

from retrieval import Kind, KnowledgeError, Settings, load_assistant
from retrieval.serving.embedder import ModelError
from retrieval.serving.index import IndexStoreError
from retrieval.serving.text import escape_markdown
from retrieval.serving.walkthrough import Walkthrough, can_walk, view
from retrieval.store import open_store

st.set_page_config(page_title="美国手机号充值助手 · US top-up helper", page_icon="📱")


def chat() -> None:
    """The chat is the rest of this file; st.navigation only needs a page to name it by."""


# Users see no navigation; operators open /insights by its URL, behind its password.
page = st.navigation([st.Page(chat, title="Chat", default=True),
                      st.Page("pages/insights.py", title="Insights", url_path="insights")], position="hidden")
if page.url_path == "insights":
    page.run()
    st.stop()


@st.cache_resource(show_spinner="正在加载模型和知识库… Loading the model and knowledge base…")
def get_assistant():
    return load_assistant(Settings.from_env())


try:
    assistant = get_assistant()
except (KnowledgeError, ModelError, IndexStoreError) as exc:
    st.error(f"The assistant cannot start / 助手无法启动：\n\n{exc}")
    st.stop()
kb = assistant.kb
settings = Settings.from_env()
store = open_store(settings)  # the one store of the process, shared with the insights page
state = st.session_state
state.setdefault("session_id", uuid.uuid4().hex)
state.setdefault("messages", [])      # {"id", "role", "text"} or {"id", "role", "answer", "interaction"}
state.setdefault("walk", None)        # the current Walkthrough, kept while side questions are asked
state.setdefault("pending", None)     # a question or choice waiting to be answered on this run
state.setdefault("provider", None)
state.setdefault("language", "auto")
state.setdefault("next_id", 0)
NO_PROVIDER = "— 未选择 / none —"


def ui_language() -> str:
    if state.language != "auto":
        return state.language
    answers = [m["answer"] for m in state.messages if m["role"] == "assistant"]
    return answers[-1].language if answers else "zh"


def t(key: str, **values) -> str:
    return kb.message(key, ui_language(), **values)


def new_id() -> int:
    state.next_id += 1
    return state.next_id


# -- actions (button callbacks run before the page is drawn again) ---------------------------
def ask(question: str, provider: str | None = None, entry_id: str | None = None) -> None:
    state.pending = {"question": question, "provider": provider, "entry_id": entry_id}


def start_walk(entry_id: str, language: str) -> None:
    state.walk = Walkthrough(entry_id, language)


def move_walk(how: str) -> None:
    state.walk = None if how == "exit" else getattr(state.walk, how)()


def save_feedback(message: dict) -> None:
    rating = state.get(f"fb-{message['id']}")
    if rating is not None and message.get("interaction"):
        store.log_feedback(interaction_id=message["interaction"], rating=int(rating),
                           comment=state.get(f"comment-{message['id']}") or None)


def new_conversation() -> None:
    for key in ("messages", "walk", "pending", "provider"):
        state.pop(key, None)
    state.pop("provider_picker", None)


def pick_provider(names: dict[str, str]) -> None:
    state.provider = names.get(state.provider_picker)


# -- answering (before the sidebar, so it shows the provider just recognised) --------------
if prompt := st.chat_input("输入你的问题… Ask a question…"):
    ask(prompt)

if state.pending:
    request, state.pending = state.pending, None
    language = None if state.language == "auto" else state.language
    provider = request["provider"] or state.provider
    if request["entry_id"]:
        answer = assistant.answer_entry(request["entry_id"], language or ui_language(), request["question"])
    else:
        answer = assistant.ask(request["question"], provider=provider, language=language)
    if answer.provider and answer.kind is not Kind.DECLINE:
        state.provider = answer.provider
    state.messages.append({"id": new_id(), "role": "user", "text": answer.question})
    top = answer.hits[0] if answer.hits else None
    interaction = store.log_interaction(
        session_id=state.session_id, question=answer.question, language=answer.language,
        provider=answer.provider, kind=answer.kind.value, entry_id=answer.entry_id,
        topic=top.topic if top and answer.entry_id else None, answered=answer.answered,
        score=top.score if top else None)
    state.messages.append({"id": new_id(), "role": "assistant", "answer": answer, "interaction": interaction})

# -- sidebar ----------------------------------------------------------------------------------
with st.sidebar:
    st.radio("语言 / Language", ["auto", "zh", "en"], key="language", horizontal=True,
             format_func={"auto": "自动 Auto", "zh": "中文", "en": "English"}.get)
    # Brand names as options: they read the same in both languages and survive a language switch.
    names = {kb.providers[p].name["en"]: p for p in kb.providers if p != "general"}
    label_of = {p: name for name, p in names.items()}
    if state.get("provider_picker") != label_of.get(state.provider, NO_PROVIDER):
        state.provider_picker = label_of.get(state.provider, NO_PROVIDER)
    st.selectbox("运营商 / Provider", [NO_PROVIDER, *names], key="provider_picker", on_change=pick_provider,
                 args=(names,))
    st.button("🆕 新对话 / New conversation", on_click=new_conversation, use_container_width=True)
    st.caption("答案全部来自核对过的知识库，不是 AI 生成。Answers come word for word from a checked "
               "knowledge base, never generated.")

# -- the conversation -------------------------------------------------------------------------
st.title("📱 美国手机号充值助手")
st.caption("US phone top-up helper · Google Voice · T-Mobile · Mint · Tello · AT&T …")
if state.provider:
    st.info(f"{t('provider_now')}: **{kb.providers[state.provider].name[ui_language()]}**")

if not state.messages:
    st.markdown(t("welcome"))
    for n, question in enumerate(t("starters").strip().splitlines()):
        st.button(question, key=f"starter-{n}", on_click=ask, args=(question,))


SHOWN_CHOICES = 6  # the likeliest providers; the rest fold away


def choice_buttons(choices, key: str) -> None:
    columns = st.columns(2)
    for n, choice in enumerate(choices):
        columns[n % 2].button(choice.label, key=f"{key}-{n}", on_click=ask, use_container_width=True,
                              args=(choice.question, choice.provider, choice.entry_id))


def render_answer(message: dict) -> None:
    answer, mid = message["answer"], message["id"]
    for notice in answer.notices:
        st.warning(notice)
    st.markdown(answer.markdown)
    choice_buttons(answer.choices[:SHOWN_CHOICES], f"choice-{mid}")
    if len(answer.choices) > SHOWN_CHOICES:
        with st.expander(kb.message("more_choices", answer.language)):
            choice_buttons(answer.choices[SHOWN_CHOICES:], f"more-{mid}")
    if answer.entry_id and answer.has_steps and can_walk(kb, answer.entry_id):
        st.button(f"👣 {kb.message('walk_me', answer.language)}", key=f"walk-{mid}", type="primary",
                  on_click=start_walk, args=(answer.entry_id, answer.language))
    if answer.related:
        st.caption(kb.message("related_heading", answer.language))
        for n, choice in enumerate(answer.related):
            st.button(choice.question, key=f"related-{mid}-{n}", on_click=ask,
                      args=(choice.question, None, choice.entry_id))
    st.feedback("thumbs", key=f"fb-{mid}", on_change=save_feedback, args=(message,))
    if state.get(f"fb-{mid}") is not None:
        st.text_input(kb.message("comment_prompt", answer.language), key=f"comment-{mid}",
                      on_change=save_feedback, args=(message,))


for message in state.messages:
    with st.chat_message(message["role"]):
        if message["role"] == "user":
            st.markdown(escape_markdown(message["text"]))
        else:
            render_answer(message)

# -- the walkthrough stays on its step while side questions are asked above it --------------
if state.walk is not None:
    step = view(kb, state.walk)
    lang = state.walk.language
    with st.container(border=True):
        st.markdown(f"**👣 {step.title}** · {step.progress}")
        st.progress(min(step.number, step.total) / step.total)
        st.markdown(step.text)
        if step.expect:
            st.caption(step.expect)
        if step.troubleshooting:
            st.warning(step.troubleshooting)
        if step.payment_help:
            with st.expander(kb.message("payment_help_heading", lang), expanded=True):
                st.markdown(step.payment_help)
        cols = st.columns(4)
        if not step.finished:
            cols[0].button(f"✅ {kb.message('step_done', lang)}", key="walk-next", on_click=move_walk, args=("next",))
        if state.walk.step > 0:
            cols[1].button(f"⬅️ {kb.message('step_back', lang)}", key="walk-back", on_click=move_walk, args=("back",))
        if not (step.is_last or step.finished):
            cols[2].button(f"⚠️ {kb.message('step_failed', lang)}", key="walk-fail", on_click=move_walk,
                           args=("fail",))
        cols[3].button(f"✖️ {kb.message('walk_exit', lang)}", key="walk-exit", on_click=move_walk, args=("exit",))
