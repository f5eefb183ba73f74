"""PieceTokenizer gives the ids `tokenizers` gives, with the vocabulary in flat arrays instead of a trie."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from tokenizers.models import Unigram

from retrieval.serving.pieces import PieceTokenizer

# Equal scores on purpose (ab = a + b, ▁ab = ▁a + b, ...): ties must go the way tokenizers breaks them.
VOCAB = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", -1e9), ("▁", -2.0), ("a", -2.0), ("b", -3.0),
         ("ab", -5.0), ("▁a", -3.0), ("▁ab", -6.0), ("ba", -5.0), ("aba", -7.0), ("bab", -8.0), ("c", -4.0),
         ("abc", -9.0), ("▁abc", -12.0)]


def tiny() -> PieceTokenizer:
    return PieceTokenizer(VOCAB, unk_id=3, bos_id=0, eos_id=2, pad_id=1, max_length=12)


def reference() -> Tokenizer:
    return Tokenizer(Unigram(VOCAB, unk_id=3, byte_fallback=False))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab▁cxy", max_size=30))
def test_pieces_are_the_ones_tokenizers_chooses(text):
    """Every split and every tie as tokenizers' Viterbi makes it; x and y (in no piece) become <unk>, runs of them
    one <unk>."""
    assert tiny().pieces(text) == (reference().encode(text, add_special_tokens=False).ids if text else [])


def test_unknown_characters_become_one_unk_per_run():
    t = tiny()
    assert t.pieces("xyxa") == [3, 5]
    assert t.pieces("axyb") == [5, 3, 6]
    assert t.pieces("") == []


def test_ids_add_the_ends_cut_to_fit_and_pad_to_the_longest():
    t = tiny()
    assert t.ids("") == [0, 2]
    assert len(t.ids("a" * 50)) == 12  # <s>, ten pieces, </s>
    ids, mask, types = t.encode_batch(["ab", "a" * 50])
    assert ids.shape == mask.shape == types.shape == (2, 12)
    assert ids[0].tolist() == [0, 7, 2] + [1] * 9 and mask[0].tolist() == [1, 1, 1] + [0] * 9
    assert not types.any()


def test_a_piece_given_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        PieceTokenizer([*VOCAB, ("a", -1.0)], unk_id=3, bos_id=0, eos_id=2, pad_id=1, max_length=12)


def _tokenizer_json(tmp_path: Path, **changes) -> Path:
    spec = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True}
                             for i, c in ((0, "<s>"), (1, "<pad>"), (2, "</s>"))],
            "normalizer": None, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                                                  "split": False},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                               "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                                              "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
            "decoder": None, "model": {"type": "Unigram", "unk_id": 3, "vocab": VOCAB, "byte_fallback": False}}
    spec.update(changes)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_load_reads_tokenizer_json_and_matches_tokenizers(tmp_path):
    path = _tokenizer_json(tmp_path)
    mine = PieceTokenizer.load(path, max_length=8, split_special_tokens=True, pad_token="<pad>")
    theirs = Tokenizer.from_file(str(path))
    theirs.encode_special_tokens = True
    theirs.enable_truncation(max_length=8)
    for text in ["ab abc", "a b", "", "xyz ab", "ab " * 10, "<s>ab</s>"]:
        assert mine.ids(text) == theirs.encode(text).ids


def test_load_declines_what_it_does_not_reproduce(tmp_path):
    def load(**changes):
        return PieceTokenizer.load(_tokenizer_json(tmp_path, **changes), 8, True, "<pad>")

    assert load(model={"type": "BPE", "vocab": {}, "merges": []}) is None
    assert load(model={"type": "Unigram", "unk_id": 3, "vocab": VOCAB, "byte_fallback": True}) is None
    assert load(post_processor=None) is None
    assert PieceTokenizer.load(_tokenizer_json(tmp_path), 8, False, "<pad>") is None  # specials matched whole


@pytest.mark.model
def test_the_real_models_ids_match_tokenizers(real_settings):
    """multilingual-e5-small's tokenizer.json: the development questions and the edge texts, both prompts, and a
    text long enough to be cut."""
    from retrieval.loading import prepare_model
    from retrieval.measure.evaluate import load_dev_set

    path = Path(prepare_model(real_settings)) / "tokenizer.json"
    mine = PieceTokenizer.load(path, max_length=512, split_special_tokens=True, pad_token="<pad>")
    theirs = Tokenizer.from_file(str(path))
    theirs.encode_special_tokens = True
    theirs.enable_truncation(max_length=512)
    texts = [q.q for q in load_dev_set()] + ["GV怎么充值", "", "🙂🙂", "？？？", "<s> </s> <unk> <mask>",
                                            "naïve ｅ\u0301", "谷歌语音" * 300, "\t\x00\u200b top\u3000up", "ﷺ ﬁ ℡ ①"]
    for prompt in ("query: ", "passage: "):
        for text in texts:
            assert mine.ids(prompt + text) == theirs.encode(prompt + text).ids, text
