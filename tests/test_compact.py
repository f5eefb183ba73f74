"""FrozenStrMap answers as the dict it was built from; jieba cuts the same with its dictionary in one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.serving.compact import FrozenStrMap, compact_jieba

KEYS = st.text(alphabet="ab充值卡😀", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, st.integers(-5, 10**12), max_size=60),
       st.lists(st.text(alphabet="ab充值卡😀x", max_size=7)))
def test_lookups_answer_as_the_dict(mapping, probes):
    frozen = FrozenStrMap.from_dict(mapping)
    assert len(frozen) == len(mapping) and dict(frozen) == mapping
    for key in [*mapping, *probes]:
        assert (key in frozen) == (key in mapping)
        assert frozen.get(key) == mapping.get(key)
        assert frozen.get(key, -1) == mapping.get(key, -1)
        if key in mapping:
            assert frozen[key] == mapping[key] and frozen.key(frozen.index(key)) == key
        else:
            assert frozen.index(key) == -1
            with pytest.raises(KeyError):
                frozen[key]


def test_empty_map_and_odd_keys():
    empty = FrozenStrMap([], [])
    assert len(empty) == 0 and "a" not in empty and empty.get("a") is None
    frozen = FrozenStrMap(["a"], [1])
    assert 1 not in frozen and frozen.get(None) is None


def test_a_key_twice_or_an_empty_key_is_refused():
    with pytest.raises(ValueError, match="twice"):
        FrozenStrMap(["a", "b", "a"], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        FrozenStrMap(["a", ""], [1, 2])


SENTENCES = ["谷歌语音怎么充值", "我的美国手机号快过期了怎么办", "信用卡被拒绝了", "中华人民共和国",
             "充值卡充值失败退款", "南京市长江大桥", "薄荷卡余额查询", "我想给TMobile充值五十美元"]


def test_jieba_cuts_the_same_with_its_dictionary_compacted(tmp_path):
    import jieba

    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = str(tmp_path)
    tokenizer.initialize()
    expected = [(list(tokenizer.cut(s)), list(tokenizer.cut_for_search(s)), list(tokenizer.cut(s, HMM=False)))
                for s in SENTENCES]
    original = tokenizer.FREQ
    tokenizer.FREQ = FrozenStrMap.from_dict(original)
    assert dict(tokenizer.FREQ) == original
    assert [(list(tokenizer.cut(s)), list(tokenizer.cut_for_search(s)), list(tokenizer.cut(s, HMM=False)))
            for s in SENTENCES] == expected


def test_compact_jieba_is_done_once():
    import jieba

    compact_jieba()
    first = jieba.dt.FREQ
    compact_jieba()
    assert isinstance(first, FrozenStrMap) and jieba.dt.FREQ is first and len(first) > 300_000
