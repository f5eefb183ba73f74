"""Text: normalising, language, and words (jieba for Chinese, plain words for English)."""

from __future__ import annotations

import hashlib
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


# Written Cantonese, as Hong Kong users type it, read as Mandarin (after Traditional -> Simplified): its
# function words (点样 how, 喺 at, 唔 not, 咗, 冇 ...), its sentence particles (dropped), 短訊 (SMS) and 增值,
# Hong Kong's word for topping up (增值税 and 增值服务 stay what they are). Without them "Tello 點樣增值" shared
# no word with any phrasing of ours but Hong Kong questions we decline (八達通點樣增值) and was declined. No
# library turns Cantonese into Mandarin (OpenCC converts characters, and Taiwan's words with tw2sp, whose
# quirks cost more than they gave: 推荐么 -> 推荐幺, 查询 -> 查找; measured 2 December 2026). Longer forms win.
# Session 22 added what a question asks with (点算 and 点搞 what to do, 点睇 how to see, 仲剩 still left): not 点 or 仲
# alone, which Mandarin has too (点卡, 仲裁). Session 24 added 仲可唔可以 and 点增值 (增值 is Hong Kong's
# word, so 点 before it asks how), and paying that fails (付唔到, 碌唔到: "can't pay", where 付不到 would read as
# money not arriving). Only words no phrasing or topic example uses: the classifiers learn the
# knowledge base's texts normalised, so a word they use refits them (但系 and 唔系 as 但是 and 不是 did: 3 more
# development answers lost than gained; tests/test_text.py keeps these off the knowledge base's words). The index is
# rebuilt when this table changes (`tables_digest`, kept in its manifest).
CANTONESE = {
    "点样": "怎样", "点解": "为什么", "几时": "什么时候", "几多": "多少", "几耐": "多久", "边度": "哪里",
    "边个": "谁", "乜嘢": "什么", "乜": "什么", "咩": "什么", "嘢": "东西", "系唔系": "是不是", "系咪": "是不是",
    "得唔得": "行不行", "唔该": "谢谢", "佢哋": "他们", "我哋": "我们", "你哋": "你们", "哋": "们", "佢": "他",
    "喺": "在", "唔": "不", "嘅": "的", "咗": "了", "冇": "没有", "啲": "些", "嚟": "来", "睇": "看", "搵": "找",
    "揾": "找", "攞": "拿", "畀": "给", "俾": "给", "而家": "现在", "咁": "这么", "啱啱": "刚刚", "嗰": "那",
    "仲未": "还没", "仲有": "还有", "仲系": "还是", "仲要": "还要", "呢个": "这个", "呢张": "这张", "碌卡": "刷卡",
    "增值": "充值", "增值税": "增值税", "增值服务": "增值服务", "短讯": "短信", "㗎": "", "㖞": "", "啩": "", "嘞": "",
    "点算": "怎么办", "点搞": "怎么办", "点做": "怎么做", "点睇": "怎么看", "点先": "怎样才", "仲剩": "还剩",
    "仲可以": "还可以", "净返": "剩下", "净低": "剩下", "使唔使": "需不需要", "边间": "哪家", "边张": "哪张",
    "仲可唔可以": "还可不可以", "点增值": "怎么充值", "付唔到": "付不了", "交唔到": "交不了", "俾唔到钱": "付不了钱",
    "畀唔到钱": "付不了钱", "碌唔到": "刷不了", "增值唔到": "充值不了",
}
_CANTONESE = re.compile("|".join(sorted(map(re.escape, CANTONESE), key=len, reverse=True)))


def tables_digest() -> str:
    """A digest of the tables `normalise` and `words` read text with. The classifiers are fitted on the knowledge
    base's texts read so: an index built under other tables is stale (`build.index.stale_reason`)."""
    table = "\n".join([*(f"{k}\t{v}" for k, v in sorted(CANTONESE.items())), *sorted(STOPWORDS)])
    return hashlib.sha256(table.encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """NFKC, lower case, Traditional characters to Simplified, Cantonese words to Mandarin, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    if HAN.search(text):
        text = _CANTONESE.sub(lambda m: CANTONESE[m.group()], _t2s().convert(text))
    return " ".join(text.split())


def language_of(text: str, fallback: str = "zh") -> str:
    """'zh' when the text has Chinese characters, 'en' when it has Latin letters only."""
    if HAN.search(text):
        return "zh"
    if LATIN.search(text):
        return "en"
    return fallback


def words(text: str, keep_stopwords: bool = False) -> list[str]:
    """Search words: jieba for Chinese runs (with their sub-words), whole words for the rest; without the
    stopwords unless `keep_stopwords` (a follow-up is told by them: "那 Mint 呢", "and Mint?")."""
    out: list[str] = []
    for run in WORD.findall(AMPERSAND.sub("", normalise(text))):
        if HAN.match(run):
            out += [w for w in jieba.cut_for_search(run) if w.strip()]
        else:
            out.append(run)
    return out if keep_stopwords else [w for w in out if w not in STOPWORDS]


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&])")


def escape_markdown(text: str) -> str:
    """User text shown as typed: no Markdown, links, HTML or formulas take effect.

    >>> escape_markdown("**hi** <b>")
    '\\\\*\\\\*hi\\\\*\\\\* \\\\<b\\\\>'
    """
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)
