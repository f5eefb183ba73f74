"""TrieMap answers as the dict it was built from; jieba cuts the same with its dictionary in one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.serving.compact import TrieMap, compact_jieba

KEYS = st.text(alphabet="ab充值卡😀", max_size=6)
KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 10**6), max_size=60),
       st.lists(st.text(alphabet="ab充值卡😀x\x00\ud800", max_size=7)))
def test_lookups_answer_as_the_dict(mapping, probes):
    frozen = TrieMap.from_dict(mapping)
    assert len(frozen) == len(mapping) and dict(frozen) == mapping
    for key in [*mapping, *probes]:
        assert (key in frozen) == (key in mapping)
        assert frozen.get(key) == mapping.get(key)
        assert frozen.get(key, -1) == mapping.get(key, -1)
        if key in mapping:
            assert frozen[key] == mapping[key] and type(frozen[key]) is int
        else:
            with pytest.raises(KeyError):
                frozen[key]


def test_empty_map_and_keys_that_are_not_strings():
    empty = TrieMap([], [])
    assert len(empty) == 0 and "a" not in empty and empty.get("a") is None and list(empty) == []
    frozen = TrieMap(["a"], [1])
    assert 1 not in frozen and None not in frozen and b"a" not in frozen
    assert frozen.get(None) is None and frozen.get(1, 7) == 7
    with pytest.raises(KeyError):
        frozen[b"a"]


def test_a_key_twice_a_value_missing_or_a_nul_in_a_key_is_refused():
    with pytest.raises(ValueError, match="twice"):
        TrieMap(["a", "b", "a"], [1, 2, 3])
    with pytest.raises(ValueError, match="one value a key"):
        TrieMap(["a", "b"], [1])
    with pytest.raises(ValueError, match="NUL"):
        TrieMap(["a", "a\x00b"], [1, 2])


def chinese_sentences(limit: int = 400) -> list[str]:
    """Sentences with Chinese in them from every string of knowledge/*.yaml, spread over all the files."""
    def strings(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)

    found: list[str] = []
    for path in sorted(KNOWLEDGE.glob("*.yaml")):
        for text in strings(yaml.safe_load(path.read_text(encoding="utf-8"))):
            found += [s for s in re.split(r"[\n。？！?!；;]", text) if re.search(r"[\u4e00-\u9fff]", s)]
    found = list(dict.fromkeys(found))
    return found[::max(1, len(found) // limit)]


def test_jieba_cuts_the_same_with_its_dictionary_in_a_trie(tmp_path):
    import jieba

    sentences = chinese_sentences()
    assert len(sentences) >= 300

    def cuts(tokenizer):
        return [(list(tokenizer.cut(s)), list(tokenizer.cut_for_search(s)), list(tokenizer.cut(s, HMM=False)),
                 list(tokenizer.cut(s, cut_all=True))) for s in sentences]

    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = str(tmp_path)
    tokenizer.initialize()
    expected = cuts(tokenizer)
    original = tokenizer.FREQ
    tokenizer.FREQ = TrieMap.from_dict(original)
    assert len(tokenizer.FREQ) == len(original) > 300_000
    assert all(tokenizer.FREQ[word] == count for word, count in original.items())
    assert cuts(tokenizer) == expected


def test_compact_jieba_is_done_once():
    import jieba

    compact_jieba()
    first = jieba.dt.FREQ
    compact_jieba()
    assert isinstance(first, TrieMap) and jieba.dt.FREQ is first and len(first) > 300_000
