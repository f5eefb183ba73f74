"""Retrieval: everything that decides what the assistant answers. Never imports Streamlit."""

from retrieval.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from retrieval.loading import load_assistant
from retrieval.serving.answer import Answer, Choice, Hit, Kind
from retrieval.serving.assistant import Assistant
from retrieval.serving.decide import DecisionConfig
from retrieval.settings import Settings

__all__ = ["Answer", "Assistant", "Choice", "DecisionConfig", "Hit", "Kind", "KnowledgeBase",
           "KnowledgeError", "Settings", "load_assistant", "load_knowledge"]
