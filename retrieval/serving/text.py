"""Text: normalising, language, and words (jieba for Chinese, plain words for English)."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba
import opencc

jieba.setLogLevel(logging.WARNING)

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
AMPERSAND = re.compile(r"(?<=[a-z])\s*&\s*(?=[a-z])")  # AT&T, AT & T -> att
# Function words that say nothing about what the user wants.
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 嘛 我 你 他 她 它 我们 是 在 有 和 与 就 都 也 还 要 请问 请 一下 这个 那个 "
    "a an the to of in on at for is are am be do does did i my me you your it its and or with can "
    "could would should will how what when where which who why please".split())


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """NFKC, lower case, Traditional characters to Simplified, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    if HAN.search(text):
        text = _t2s().convert(text)
    return " ".join(text.split())


def language_of(text: str, fallback: str = "zh") -> str:
    """'zh' when the text has Chinese characters, 'en' when it has Latin letters only."""
    if HAN.search(text):
        return "zh"
    if LATIN.search(text):
        return "en"
    return fallback


def words(text: str) -> list[str]:
    """Search words: jieba for Chinese runs (with their sub-words), whole words for the rest."""
    out: list[str] = []
    for run in WORD.findall(AMPERSAND.sub("", normalise(text))):
        if HAN.match(run):
            out += [w for w in jieba.cut_for_search(run) if w.strip()]
        else:
            out.append(run)
    return [w for w in out if w not in STOPWORDS]


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&])")


def escape_markdown(text: str) -> str:
    """User text shown as typed: no Markdown, links, HTML or formulas take effect.

    >>> escape_markdown("**hi** <b>")
    '\\\\*\\\\*hi\\\\*\\\\* \\\\<b\\\\>'
    """
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)
