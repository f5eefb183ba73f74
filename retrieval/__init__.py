"""Retrieval: everything that decides what the assistant answers. Never imports Streamlit."""

from .answer import Answer, Choice, Hit, Kind
from .assistant import Assistant, DecisionConfig
from .knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from .loading import load_assistant
from .settings import Settings

__all__ = ["Answer", "Assistant", "Choice", "DecisionConfig", "Hit", "Kind", "KnowledgeBase",
           "KnowledgeError", "Settings", "load_assistant", "load_knowledge"]
