"""Terms: the variants of knowledge/vocabulary.yaml read as their group's canonical word."""

from __future__ import annotations

import pytest

from retrieval.knowledge import TermGroup
from retrieval.serving.terms import Terms
from retrieval.serving.text import normalise

TOP_UP = TermGroup("top_up", {"zh": "充值", "en": "top up"},
                   {"zh": ("交话费", "续费", "儲值"), "en": ("refill", "pay my bill", "top-up")})
AUTOPAY = TermGroup("autopay", {"zh": "自动续费", "en": "autopay"},
                    {"zh": ("自动扣费", "自动充值"), "en": ("auto refill", "auto-pay")})
DECLINED = TermGroup("declined", {"zh": "付款失败", "en": "payment declined"},
                     {"zh": ("被拒",), "en": ("declined", "card rejected")})
PRODUCT_WORDS = ("e卡", "美国手机卡", "us sim card")


@pytest.fixture(scope="module")
def terms() -> Terms:
    return Terms([TOP_UP, AUTOPAY, DECLINED], PRODUCT_WORDS)


@pytest.mark.parametrize(("text", "expected"), [
    ("t-mobile 怎么交话费", "t-mobile 怎么充值"),   # Chinese variants are found anywhere
    ("怎么续费", "怎么充值"),
    ("how do i pay my bill", "how do i top up"),
    ("refill", "top up"),
    ("refilled", "refilled"),                     # Latin variants are whole words only
    ("prefill", "prefill"),
    ("top-up", "top up"),
    ("怎么儲值", "怎么充值"),                        # variants are normalised like the text (Traditional)
    ("how do i turn off auto refill", "how do i turn off autopay"),  # the longer variant wins
    ("自动充值怎么关", "自动续费怎么关"),
    ("", ""),
])
def test_variants_read_as_the_canonical_word(terms, text, expected):
    assert terms.apply(normalise(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("自动续费怎么关", "自动续费怎么关"),    # 续费 (a variant of 充值) inside 自动续费 (canonical) is left alone
    ("my payment declined", "my payment declined"),  # not "payment payment declined"
    ("my card was declined", "my card was payment declined"),
])
def test_a_canonical_word_stays_whole(terms, text, expected):
    assert terms.apply(text) == expected


@pytest.mark.parametrize("group", [TOP_UP, AUTOPAY, DECLINED], ids=lambda g: g.id)
def test_every_variant_and_the_canonical_word_give_the_canonical_word(terms, group):
    for language, canonical in group.canonical.items():
        for text in (canonical, *group.variants[language]):
            assert terms.apply(normalise(text)) == normalise(canonical), text


def test_product_words_are_taken_out_unless_nothing_else_is_left(terms):
    assert terms.apply("美国手机卡e卡怎么充值") == "怎么充值"
    assert terms.apply("us sim card refill") == "top up"
    assert terms.apply("e卡") == "e卡"  # a question that is nothing but product words keeps them
    assert terms.apply("us sim card") == "us sim card"


def test_no_groups_change_nothing():
    assert Terms([]).apply("how do i pay my bill") == "how do i pay my bill"


def test_the_real_vocabulary_keeps_its_canonical_words(tiny_kb):
    terms = Terms(tiny_kb.vocabulary, tiny_kb.product_words)
    for group in tiny_kb.vocabulary:
        for canonical in group.canonical.values():
            assert terms.apply(normalise(canonical)) == normalise(canonical), group.id
