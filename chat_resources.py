"""What every session of the chat server shares: the assistant, loaded once per process.

Imported by app.py (the page) and chat_server.py (which loads the assistant before the first visitor), so both
reach the same `st.cache_resource` entry. (The store is shared through retrieval.store.open_store.)
"""

from __future__ import annotations

import gc
import threading

import streamlit as st

from retrieval import Assistant, Settings, load_assistant


def _warm_up(assistant: Assistant) -> None:
    """Ask a few questions from two threads at once: the embedder prepares its model for concurrent questions
    the first time two overlap (about a second), and that should happen now, not to the first visitors."""
    questions = ["GV怎么充值", "How do I top up Tello?", "卡被拒了怎么办", "Mint balance expiry"]
    threads = [threading.Thread(target=lambda: [assistant.ask(q) for q in questions]) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@st.cache_resource(show_spinner="正在加载模型和知识库… Loading the model and knowledge base…")
def get_assistant() -> Assistant:
    assistant = load_assistant(Settings.from_env())
    _warm_up(assistant)
    # The model, the index and the knowledge base live as long as the process: move them out of the garbage
    # collector's sight, so its full collections walk only what sessions create (they took 40+ ms each).
    gc.collect()
    gc.freeze()
    return assistant
