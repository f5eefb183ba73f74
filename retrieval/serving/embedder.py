"""Embedders: turn texts into normalised vectors (sentence-transformers, or a fake for tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


class ModelError(Exception):
    """The embedding model could not be prepared or loaded."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model, using its `query`/`passage` prompts when it has them.

    `backend="openvino"` runs the same model through OpenVINO instead of torch: about twice as fast
    on a CPU, the same vectors to a cosine of 0.9999, and a process that never imports torch or
    sentence-transformers, so it starts in a fraction of the time. It covers the layout the converted
    e5 model has (a transformer, mean pooling, normalised), which `tokenizers`, OpenVINO and numpy
    reproduce step for step. The first load exports the transformer into `<path>/openvino/` (some
    seconds, with torch, once); later loads read that, and export again when the weights change.
    """

    BACKENDS = ("torch", "openvino")
    EXPORT_DIR = "openvino"
    EXPORT_FILE = "openvino_model.xml"
    EXPORT_SOURCE = "source.json"  # which weights the export was made from, and its inputs
    INPUTS = ("input_ids", "attention_mask", "token_type_ids")
    # LATENCY: one stream using every core for one question at a time, which is how a chat is asked.
    OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY"}
    # While another question is being embedded, a second compiled model with one stream per core takes
    # the rest: each answer a little slower, more answers a second (compiled the first time it is needed).
    OPENVINO_BUSY_CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT"}

    def __init__(self, path: str, name: str | None = None, backend: str = "torch", batch_size: int = 32,
                 busy_model: bool = True):
        if backend not in self.BACKENDS:
            raise ModelError(f"unknown backend {backend!r} (ASSISTANT_BACKEND): use one of {', '.join(self.BACKENDS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = name or path
        self.backend = backend
        self.batch_size = batch_size
        self.busy_model = busy_model  # False: overlapping questions wait for the one model (no second copy)
        self.model = None  # the SentenceTransformer, for the torch backend
        try:
            if backend == "openvino":
                self._load_openvino(Path(path))
            else:
                self._load_torch(path)
        except ModelError:
            raise
        except Exception as exc:  # the libraries raise many kinds; the user needs one message
            raise ModelError(f"cannot load the embedding model {path!r} ({backend}): {exc}") from exc
        self.embed_queries(["warm up", "预热"])  # the first calls are much slower than the rest

    def _load_torch(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device="cpu", backend="torch", local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        prompts = getattr(self.model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else None

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.model is None:
            return self._encode_openvino(list(texts), self._prompts.get(prompt_name or "", ""))
        vectors = self.model.encode(list(texts), prompt_name=prompt_name, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)

    # -- the OpenVINO backend ---------------------------------------------------------------
    def _load_openvino(self, path: Path) -> None:
        import threading

        from tokenizers import Tokenizer

        layout = self._read_layout(path)
        ov = self._import_openvino()
        export = path / self.EXPORT_DIR
        source = self._export_source(path, ov.__version__)
        core = ov.Core()
        compiled, model, names = None, None, self._exported_inputs(export, source)
        if names:
            try:
                model = core.read_model(str(export / self.EXPORT_FILE))
                compiled = core.compile_model(model, "CPU", self.OPENVINO_CONFIG)
            except RuntimeError:  # a damaged export: make it again
                compiled = model = None
        if compiled is None:
            traced, names = self._export(path)
            compiled = core.compile_model(traced, "CPU", self.OPENVINO_CONFIG)
            self._save_export(ov, traced, export, {**source, "inputs": names})
        self._compiled, self._input_names = compiled, names
        self._requests = threading.local()  # one infer request per thread: a request is not shareable
        # The busy model is compiled from this same read model, so the weights file is mapped once (a second
        # read maps it again, and every page the two touch counts twice in the process's memory).
        self._core, self._model, self._export_file = core, model, export / self.EXPORT_FILE
        self._busy_compiled = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self.dim = int(compiled.output(0).get_partial_shape()[2].get_length())
        self._prompts = layout["prompts"]
        self._query_prompt = "query" if "query" in self._prompts else None
        self._passage_prompt = "passage" if "passage" in self._prompts else None
        # Tokenised as sentence-transformers' Transformer module does: its tokenizer.json, special-token
        # strings typed by a user split like any text when the model asks for it, padded to the longest
        # text of a batch, cut at the model's length.
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.encode_special_tokens = layout["split_special_tokens"]
        self._tokenizer.enable_truncation(max_length=layout["max_length"])
        pad_id = self._tokenizer.token_to_id(layout["pad_token"])
        if pad_id is None:
            raise ModelError(f"{path}: the pad token {layout['pad_token']!r} is not in tokenizer.json")
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=layout["pad_token"])

    @staticmethod
    def _read_layout(path: Path) -> dict:
        """What the OpenVINO backend needs from a sentence-transformers folder, or why it cannot run it."""
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
        return {"prompts": read("config_sentence_transformers.json").get("prompts") or {},
                "split_special_tokens": bool(tokenizer_config.get("split_special_tokens", False)),
                "max_length": int(min(n for n in lengths if isinstance(n, int) and n > 0)),
                "pad_token": tokenizer_config.get("pad_token") or "<pad>"}

    def _request(self, busy: bool):
        """This thread's infer request: on the one-question model, or on the busy one."""
        name = "busy" if busy else "quiet"
        request = getattr(self._requests, name, None)
        if request is None:
            if busy:
                with self._lock:
                    if self._busy_compiled is None:
                        if self._model is None:  # exported just now: the traced model in memory is gone
                            self._model = self._core.read_model(str(self._export_file))
                        self._busy_compiled = self._core.compile_model(self._model, "CPU", self.OPENVINO_BUSY_CONFIG)
            request = (self._busy_compiled if busy else self._compiled).create_infer_request()
            setattr(self._requests, name, request)
        return request

    def _encode_openvino(self, texts: list[str], prompt: str) -> np.ndarray:
        with self._lock:
            busy = self.busy_model and self._in_flight > 0 and self._export_file.is_file()
            self._in_flight += 1
        try:
            return self._encode_with(self._request(busy), texts, prompt)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _encode_with(self, request, texts: list[str], prompt: str) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad less
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([prompt + texts[i] for i in rows])
            arrays = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                      "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                      "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
            hidden = request.infer({i: arrays[n] for i, n in enumerate(self._input_names)})[0]
            mask = arrays["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    @staticmethod
    def _import_openvino():
        """`import openvino` reports usage to an analytics server unless `openvino_telemetry` is missing.

        There is no network here (and a user's questions are nobody else's business), so the package is
        hidden from it; OpenVINO then uses its own no-op stand-in.
        """
        if "openvino" not in sys.modules:
            sys.modules.setdefault("openvino_telemetry", None)
        import openvino

        return openvino

    @classmethod
    def _export_source(cls, path: Path, openvino_version: str) -> dict:
        weights = {}
        for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            stat = file.stat()
            weights[file.name] = [stat.st_size, stat.st_mtime_ns]
        config = path / "config.json"
        return {"weights": weights, "config": config.read_text(encoding="utf-8") if config.is_file() else "",
                "openvino": openvino_version, "stored_as": "f16"}

    @classmethod
    def _exported_inputs(cls, export: Path, source: dict) -> list[str] | None:
        """The export's input names when it was made from these weights, else None."""
        try:
            saved = json.loads((export / cls.EXPORT_SOURCE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        names = saved.pop("inputs", None) if isinstance(saved, dict) else None
        if saved != source or not (export / cls.EXPORT_FILE).is_file():
            return None
        if not names or not set(names) <= set(cls.INPUTS):
            return None
        return list(names)

    @classmethod
    def _export(cls, path: Path):
        """Trace the transformer (padded inputs in, token embeddings out) into an OpenVINO model."""
        import torch
        from openvino.frontend import FrontEndManager
        from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder
        from sentence_transformers import SentenceTransformer

        transformer = SentenceTransformer(str(path), device="cpu", backend="torch", local_files_only=True)[0]
        sample = transformer.preprocess(["query: 预热 warm up", "passage: a second, longer text to pad"])
        names = [n for n in cls.INPUTS if n in sample]

        class TokenEmbeddings(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *inputs):
                return self.inner(**dict(zip(names, inputs, strict=True)), return_dict=True)[0]

        with torch.no_grad():
            # Copies of the weights (shared_memory=False): the torch model is gone once this returns.
            decoder = TorchScriptPythonDecoder(TokenEmbeddings(transformer.model).eval(),
                                               example_input=tuple(sample[n] for n in names), shared_memory=False)
        # The frontend directly, not openvino.convert_model: that one also reports to the analytics server.
        frontend = FrontEndManager().load_by_framework("pytorch")
        return frontend.convert(frontend.load(decoder)), names

    @classmethod
    def _save_export(cls, ov, model, export: Path, source: dict) -> None:
        """Write the export next to the model, whole or not at all; a read-only model folder only costs time."""
        import shutil
        import tempfile

        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{cls.EXPORT_DIR}-", dir=export.parent))
        except OSError:
            return
        try:
            # Weights stored as fp16: half the disk, and only the rows of the vocabulary table a text uses
            # are ever read into memory (~0.5 GB less resident); vectors still match torch's to 0.9999.
            ov.save_model(model, str(staging / cls.EXPORT_FILE), compress_to_fp16=True)
            (staging / cls.EXPORT_SOURCE).write_text(json.dumps(source, indent=1), encoding="utf-8")
            staging.chmod(0o755)  # mkdtemp's are private; the model folder is not
            if export.exists():
                shutil.rmtree(export)
            os.rename(staging, export)
        except OSError:
            pass  # another process may have won the race; either way the model in memory is used
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class HashingEmbedder:
    """A deterministic, offline stand-in for a real model: hashed words and character pairs.

    Texts sharing words get similar vectors, so retrieval tests are exact and need no model.

    >>> e = HashingEmbedder(dim=64)
    >>> float(e.embed_queries(["top up"]) @ e.embed_queries(["top up"]).T) > 0.99
    True
    """

    name = "hashing"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        import zlib

        from retrieval.serving.text import normalise, words

        v = np.zeros(self.dim, dtype=np.float32)
        compact = normalise(text).replace(" ", "")
        features = words(text) + [compact[i:i + 2] for i in range(len(compact) - 1)]
        for feature in features:
            h = zlib.crc32(feature.encode("utf-8"))
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    embed_passages = embed_queries
