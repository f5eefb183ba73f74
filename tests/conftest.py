"""Shared fixtures: a tiny knowledge base, a deterministic offline embedder, and the real model once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from retrieval.build.index import build_index
from retrieval.knowledge import load_knowledge
from retrieval.serving.embedder import HashingEmbedder
from retrieval.settings import ROOT, Settings

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"


def copy_tiny_kb(folder: Path) -> Path:
    """A writable copy of the tiny knowledge base in `folder`, with the real catalog and messages."""
    target = folder / "knowledge"
    shutil.copytree(FIXTURE_KB, target)
    for name in ("catalog.yaml", "messages.yaml", "out_of_scope.yaml", "conversation.yaml", "vocabulary.yaml",
                 "other_services.yaml"):
        shutil.copy(ROOT / "knowledge" / name, target / name)
    return target


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    """A writable copy of the tiny knowledge base, with the real catalog and messages."""
    return copy_tiny_kb(tmp_path)


@pytest.fixture
def tiny_kb(kb_dir: Path):
    return load_knowledge(kb_dir)


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def tiny_index(tiny_kb, embedder):
    return build_index(tiny_kb, embedder)


@pytest.fixture
def tiny_assistant(tiny_kb, tiny_index, embedder):
    from retrieval.serving.assistant import Assistant

    return Assistant(tiny_kb, tiny_index, embedder)


@pytest.fixture(scope="session")
def real_settings() -> Settings:
    """The project's own model and index (make prepares them before the tests)."""
    return Settings.from_env({})


@pytest.fixture(scope="session")
def real_assistant(real_settings):
    from retrieval.loading import load_assistant

    return load_assistant(real_settings)
