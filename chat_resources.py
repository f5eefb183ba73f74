"""What every session of the chat server shares: the assistant, loaded once per process, and the feedback store.

Imported by app.py (the page) and chat_server.py (which loads the assistant before the first visitor), so both
reach the same `st.cache_resource` entries.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import streamlit as st

from retrieval import Assistant, Settings, load_assistant
from retrieval.store.feedback import FeedbackError, FeedbackStore

log = logging.getLogger(__name__)
STORE_RETRY_S = 30.0  # after the store failed to open, try again no sooner than this


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


class StoreKeeper:
    """The feedback store, opened on first use; when it cannot be opened, the page works without it and
    tries again after STORE_RETRY_S, instead of waiting on a broken database at every click."""

    def __init__(self, path: str):
        self.path = path
        self._store: FeedbackStore | None = None
        self._error = ""
        self._failed_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> FeedbackStore | None:
        with self._lock:
            due = not self._failed_at or time.monotonic() - self._failed_at >= STORE_RETRY_S
            if self._store is None and due:
                try:
                    self._store = FeedbackStore(self.path)
                    self._error = ""
                except FeedbackError as exc:
                    self._error, self._failed_at = str(exc), time.monotonic()
                    log.warning("feedback store unavailable: %s", exc)
            return self._store

    @property
    def error(self) -> str:
        return self._error


@st.cache_resource
def get_store_keeper(path: str) -> StoreKeeper:
    return StoreKeeper(path)
