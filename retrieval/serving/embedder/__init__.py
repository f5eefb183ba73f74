"""Embedders: turn texts into normalised vectors, one class per backend behind the `Embedder` interface.

- `base`: the interface, `ModelError`, and `HashingEmbedder`, the deterministic fake the tests use;
- `torch`: `TorchEmbedder`, any sentence-transformers model through torch;
- `openvino`: `OpenVINOEmbedder`, the same vectors about twice as fast from an OpenVINO export of the
  model (made by retrieval/build/openvino_export.py), without importing torch.

`retrieval.loading.open_embedder` picks one by the ASSISTANT_BACKEND setting.
"""

from retrieval.serving.embedder.base import Embedder, HashingEmbedder, ModelError, ModelLoadError

__all__ = ["Embedder", "HashingEmbedder", "ModelError", "ModelLoadError"]
