"""The embedders' backends: choosing one, the OpenVINO export and its cache, the busy model, the same vectors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from retrieval.build.openvino_export import (
    EXPORT_DIR,
    EXPORT_FILE,
    EXPORT_SOURCE,
    export_source,
    exported_inputs,
    load_openvino,
)
from retrieval.loading import open_embedder, prepare_model
from retrieval.serving.embedder import ModelError
from retrieval.serving.embedder.openvino import (
    LATENCY,
    THROUGHPUT,
    Export,
    InferRequests,
    OpenVINOEmbedder,
    import_openvino,
)
from retrieval.serving.embedder.torch import TorchEmbedder
from retrieval.settings import ROOT, Settings


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ModelError, match="unknown backend 'onnx'.*torch, openvino"):
        open_embedder("/nonexistent", backend="onnx")


def test_openvino_export_is_redone_when_the_weights_change(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    export = tmp_path / EXPORT_DIR
    source = export_source(tmp_path, "2026.4.1")
    assert exported_inputs(export, source) is None  # nothing exported yet
    export.mkdir()
    (export / EXPORT_FILE).write_text("<net/>", encoding="utf-8")
    (export / EXPORT_SOURCE).write_text(json.dumps({**source, "inputs": ["input_ids", "attention_mask"]}),
                                        encoding="utf-8")
    assert exported_inputs(export, source) == ["input_ids", "attention_mask"]
    assert exported_inputs(export, export_source(tmp_path, "2027.0.0")) is None  # another OpenVINO
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))  # re-converted weights
    assert exported_inputs(export, export_source(tmp_path, "2026.4.1")) is None
    (export / EXPORT_SOURCE).write_text("{not json", encoding="utf-8")
    assert exported_inputs(export, source) is None


def test_openvino_backend_refuses_a_model_it_cannot_reproduce(tmp_path):
    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}, '
                                           '{"type": "sentence_transformers.models.Pooling"}]', encoding="utf-8")
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}', encoding="utf-8")
    with pytest.raises(ModelError, match="mean pooling.*ASSISTANT_BACKEND=torch"):
        open_embedder(str(tmp_path), backend="openvino")
    assert not (tmp_path / EXPORT_DIR).exists()  # refused before anything was exported


def test_an_export_is_a_file_or_a_model_in_memory():
    with pytest.raises(ValueError, match="either a saved file or a model in memory"):
        Export(("input_ids",))
    with pytest.raises(ValueError, match="inputs must be some of"):
        Export(("pixels",), file=Path("x.xml"))


# -- the busy model, on a model of one ReLU ----------------------------------------------------------------
@pytest.fixture(scope="module")
def relu_file(tmp_path_factory) -> Path:
    ov = import_openvino()
    from openvino import opset13 as ops

    x = ops.parameter([1, 4], np.float32, name="x")
    file = tmp_path_factory.mktemp("relu") / "relu.xml"
    ov.save_model(ov.Model([ops.relu(x)], [x], "relu"), str(file))
    return file


def requests_for(file: Path, busy: bool = True) -> InferRequests:
    ov = import_openvino()
    quiet = ov.Core().compile_model(str(file), "CPU", LATENCY)
    return InferRequests(quiet, (lambda: ov.Core().compile_model(str(file), "CPU", THROUGHPUT)) if busy else None)


def hint(request) -> str:
    return str(request.get_compiled_model().get_property("PERFORMANCE_HINT"))


X = np.array([[-1.0, 2.0, -3.0, 4.0]], dtype=np.float32)


def in_another_thread(requests: InferRequests) -> tuple[str, np.ndarray, object]:
    """One call made from a thread of its own: the model it ran on, what it computed, its request."""
    out = []

    def call() -> None:
        with requests.request() as request:
            out.append((hint(request), request.infer({0: X})[0], request))

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    return out[0]


def test_a_lone_call_runs_on_the_one_question_model_and_keeps_its_request(relu_file):
    requests = requests_for(relu_file)
    with requests.request() as first:
        assert hint(first) == "LATENCY" and requests.in_flight == 1
        assert np.array_equal(first.infer({0: X})[0], [[0, 2, 0, 4]])
    with requests.request() as again:
        assert again is first
    assert requests.in_flight == 0 and not requests.busy_compiled  # never needed


def test_a_call_while_another_is_under_way_runs_on_the_busy_model(relu_file):
    requests = requests_for(relu_file)
    with requests.request() as held:  # a question being embedded...
        model, result, request = in_another_thread(requests)  # ...when another arrives
        with requests.request() as nested:  # the same from this thread: a request of its own on the busy model
            assert hint(nested) == "THROUGHPUT" and nested is not held
    assert model == "THROUGHPUT" and requests.busy_compiled and request is not held
    assert np.array_equal(result, [[0, 2, 0, 4]])
    assert requests.in_flight == 0
    assert in_another_thread(requests)[0] == "LATENCY"  # quiet again: back on the one-question model


def test_without_a_busy_model_every_call_runs_on_the_one_question_model(relu_file):
    requests = requests_for(relu_file, busy=False)
    with requests.request():
        assert in_another_thread(requests)[0] == "LATENCY"
    assert not requests.busy_compiled


# -- the real model ----------------------------------------------------------------------------------------
EDGE_TEXTS = ["GV怎么充值", "how do I top up Google Voice?", "", "a", "🙂🙂", "？？？", "Talkatone 充值 failed 了",
              "<s> </s> <unk>", "谷歌语音" * 300]


@pytest.fixture(scope="module")
def model_path(real_settings) -> str:
    return prepare_model(real_settings)


@pytest.fixture(scope="module")
def openvino(model_path) -> OpenVINOEmbedder:
    return open_embedder(model_path, backend="openvino")


@pytest.mark.model
def test_openvino_embeddings_match_torch(model_path, openvino):
    torch_embedder = open_embedder(model_path, backend="torch")
    assert isinstance(torch_embedder, TorchEmbedder) and torch_embedder.model is not None
    assert isinstance(openvino, OpenVINOEmbedder)
    assert (Path(model_path) / "openvino" / "openvino_model.xml").is_file()  # exported once, kept with the model
    assert sys.modules.get("openvino_telemetry") is None  # nothing reported anywhere
    for prompt in ("query: ", "passage: "):  # the very same tokens as sentence-transformers' own
        texts = [prompt + t for t in EDGE_TEXTS]
        expected = torch_embedder.model[0].preprocess(texts)["input_ids"].tolist()
        assert openvino.tokenize(texts)["input_ids"].tolist() == expected
    for embed in ("embed_queries", "embed_passages"):
        one_by_one = np.vstack([getattr(openvino, embed)([t]) for t in EDGE_TEXTS])
        batched = getattr(openvino, embed)(EDGE_TEXTS)
        reference = getattr(torch_embedder, embed)(EDGE_TEXTS)
        assert ((one_by_one * reference).sum(axis=1) >= 0.999).all()
        assert ((batched * reference).sum(axis=1) >= 0.999).all()
    assert openvino.embed_queries([]).shape == (0, openvino.dim)


@pytest.mark.model
def test_no_torch_model_behind_openvino(model_path):
    """A process serving with OpenVINO never imports torch or sentence-transformers."""
    script = ("import sys; from retrieval.loading import open_embedder; "
              f"open_embedder({model_path!r}, backend='openvino').embed_queries(['GV怎么充值']); "
              "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.model
def test_concurrent_questions_use_the_busy_model_and_get_the_same_vectors(openvino):
    """A question arriving while another is embedded runs on the throughput model: the same vectors."""
    texts = ["GV怎么充值", "how do I renew Mint", "卡被拒了怎么办", "Tello PAYG 会过期吗"] * 6
    alone = openvino.embed_queries(texts)
    results: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        results[n] = np.vstack([openvino.embed_queries([t]) for t in texts])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    with openvino.requests.request():  # a question under way for the whole run: every other one arrives busy
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert openvino.requests.busy_compiled  # the questions overlapped, so the busy model served them
    assert len(results) == 4
    for vectors in results.values():
        assert ((vectors * alone).sum(axis=1) >= 0.9999).all()


@pytest.mark.model
def test_the_weights_file_is_unmapped_after_each_call_and_the_vectors_stay_the_same(openvino):
    """Each new token maps another 2 MiB of the weights file for good unless it is unmapped after the call;
    unmapped, the next call reads it back from the page cache: the same vectors, bit for bit."""
    weights = openvino._weights
    assert weights is not None and weights.file.endswith("openvino_model.bin") and weights.ranges
    texts = ["GV怎么充值", "how do I renew Mint", "卡被拒了怎么办", "Tello PAYG 会过期吗"]
    first = openvino.embed_queries(texts)
    assert weights.resident == 0  # nothing of the file left mapped once no call is under way
    with openvino.requests.request():  # a call under way: the pages it reads are left alone
        again = openvino.embed_queries(texts)
        assert weights.resident > 0
    assert np.array_equal(first, again)
    assert np.array_equal(first, openvino.embed_queries(texts))  # the next lone call unmaps it again
    assert weights.resident == 0


@pytest.mark.model
def test_a_damaged_export_is_made_again(model_path, openvino, tmp_path):
    """The model's files linked into a folder of its own, with an export whose file is cut short."""
    source = Path(model_path)
    for item in source.iterdir():
        if item.name != EXPORT_DIR:
            (tmp_path / item.name).symlink_to(item)
    shutil.copytree(source / EXPORT_DIR, tmp_path / EXPORT_DIR, ignore=shutil.ignore_patterns("*.bin"))
    (tmp_path / EXPORT_DIR / "openvino_model.bin").symlink_to(source / EXPORT_DIR / "openvino_model.bin")
    xml = tmp_path / EXPORT_DIR / EXPORT_FILE
    xml.write_text(xml.read_text(encoding="utf-8")[:1000], encoding="utf-8")
    said: list[str] = []
    again = load_openvino(tmp_path, progress=said.append)
    assert said and "exporting" in said[0]
    assert not xml.is_symlink() and len(xml.read_text(encoding="utf-8")) > 1000  # written whole
    assert not (tmp_path / EXPORT_DIR / "openvino_model.bin").is_symlink()
    texts = ["GV怎么充值", "how do I top up Google Voice?"]
    assert ((again.embed_queries(texts) * openvino.embed_queries(texts)).sum(axis=1) >= 0.9999).all()


@pytest.mark.model
def test_without_the_busy_model_overlapping_questions_share_one_model_and_get_the_same_vectors(model_path, openvino):
    """ASSISTANT_BUSY_MODEL=0 (what replicas run): a question arriving while another is embedded runs on the
    one compiled model; no second one is compiled."""
    assert Settings.from_env({"ASSISTANT_BUSY_MODEL": "0"}).busy_model is False
    assert Settings.from_env({}).busy_model is True
    single = open_embedder(model_path, backend="openvino", busy_model=False)
    texts = ["GV怎么充值", "how do I renew Mint", "卡被拒了怎么办", "Tello PAYG 会过期吗"]
    results: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        results[n] = np.vstack([single.embed_queries([t]) for t in texts])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    with single.requests.request() as held:  # a question under way for the whole run
        assert hint(held) == "LATENCY"
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not single.requests.busy_compiled and len(results) == 3
    for vectors in results.values():
        assert ((vectors * openvino.embed_queries(texts)).sum(axis=1) >= 0.9999).all()
