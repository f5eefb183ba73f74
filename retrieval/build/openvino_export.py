"""The OpenVINO export: a model's transformer traced with torch into OpenVINO's form, kept beside the model.

The first load of a model on the OpenVINO backend exports it into `<model>/openvino/` (some seconds,
with torch, once); later loads read that, and export again when the weights, their config or
OpenVINO's version change, or when the saved export cannot be compiled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from retrieval.serving.embedder.base import loading
from retrieval.serving.embedder.openvino import (
    INPUTS,
    Export,
    ExportUnreadable,
    Layout,
    OpenVINOEmbedder,
    import_openvino,
)

EXPORT_DIR = "openvino"
EXPORT_FILE = "openvino_model.xml"
EXPORT_SOURCE = "source.json"  # which weights the export was made from, and its inputs

Progress = Callable[[str], None]


def load_openvino(path: Path, name: str | None = None, progress: Progress | None = None,
                  busy_model: bool = True) -> OpenVINOEmbedder:
    """The model at `path` on the OpenVINO backend, exported first when no current export is saved beside it."""
    path = Path(path)
    with loading(path, OpenVINOEmbedder.backend):
        Layout.read(path)  # a model this backend cannot run is refused before the slow export
        ov = import_openvino()
        export_dir = path / EXPORT_DIR
        source = export_source(path, ov.__version__)
        inputs = exported_inputs(export_dir, source)
        if inputs:
            try:
                return OpenVINOEmbedder(path, Export(tuple(inputs), file=export_dir / EXPORT_FILE), name,
                                        busy_model=busy_model)
            except ExportUnreadable:
                pass  # a damaged export: make it again
        if progress:
            progress(f"exporting the embedding model to OpenVINO into {export_dir} (once)")
        model, inputs = export_transformer(path)
        saved = save_export(ov, model, export_dir, source, inputs)
        export = Export(tuple(inputs), file=saved) if saved else Export(tuple(inputs), model=model)
        return OpenVINOEmbedder(path, export, name, busy_model=busy_model)


def export_source(path: Path, openvino_version: str) -> dict:
    """What an export depends on: the weights' sizes and times, the model's config, OpenVINO's version."""
    weights = {}
    for file in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = file.stat()
        weights[file.name] = [stat.st_size, stat.st_mtime_ns]
    config = path / "config.json"
    return {"weights": weights, "config": config.read_text(encoding="utf-8") if config.is_file() else "",
            "openvino": openvino_version, "stored_as": "f16"}


def exported_inputs(export_dir: Path, source: dict) -> list[str] | None:
    """The saved export's input names when it was made from these weights, else None."""
    try:
        saved = json.loads((export_dir / EXPORT_SOURCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = saved.pop("inputs", None) if isinstance(saved, dict) else None
    if saved != source or not (export_dir / EXPORT_FILE).is_file():
        return None
    if not names or not set(names) <= set(INPUTS):
        return None
    return list(names)


def export_transformer(path: Path):
    """Trace the transformer (padded inputs in, token embeddings out) into an `openvino.Model`, with its inputs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import_openvino()
    import torch
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder
    from sentence_transformers import SentenceTransformer

    transformer = SentenceTransformer(str(path), device="cpu", backend="torch", local_files_only=True)[0]
    sample = transformer.preprocess(["query: 预热 warm up", "passage: a second, longer text to pad"])
    names = [n for n in INPUTS if n in sample]

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


def save_export(ov, model, export_dir: Path, source: dict, inputs: list[str]) -> Path | None:
    """Write the export beside the model, whole or not at all; its file, or None when it could not be written
    (a read-only model folder only costs time: the model in memory is used)."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{EXPORT_DIR}-", dir=export_dir.parent))
    except OSError:
        return None
    try:
        # Weights stored as fp16: half the disk, and only the rows of the vocabulary table a text uses
        # are ever read into memory (~0.5 GB less resident); vectors still match torch's to 0.9999.
        ov.save_model(model, str(staging / EXPORT_FILE), compress_to_fp16=True)
        (staging / EXPORT_SOURCE).write_text(json.dumps({**source, "inputs": inputs}, indent=1), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp's are private; the model folder is not
        if export_dir.exists():
            shutil.rmtree(export_dir)
        os.rename(staging, export_dir)
    except OSError:
        pass  # another process may have won the race: its export is as good
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir / EXPORT_FILE if exported_inputs(export_dir, source) == inputs else None
