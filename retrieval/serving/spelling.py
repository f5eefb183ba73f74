"""Spelling: a misspelt English word read as the knowledge base's word it is one or two edits from.

Real posts are typed fast ("balence", "paymnet", "refil", "histroy"). The embedding blurs a typo, but the
word model, the lexical ranker and the coverage signal do not know the word at all, so a typo alone could
make a question look like something we decline. Only words nobody knows are touched: a word the knowledge
base uses anywhere (its questions to decline included), or a common English word (wordfreq), stays as typed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

from retrieval.serving.text import normalise

LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


@lru_cache(maxsize=8192)
def english_zipf(word: str) -> float:
    """How common `word` is in English (wordfreq's Zipf scale: 3 is once per million words)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def allowed_edits(word: str) -> int:
    """Edits (a swap of neighbours counts as one) a word of this length may be from the word meant: none
    under 4 letters, where one edit makes another word ("bil", "pin"), one up to 6, two from 7.

    >>> [allowed_edits(w) for w in ("pay", "refil", "paymnet")]
    [0, 1, 2]
    """
    if len(word) < 4:
        return 0
    return 1 if len(word) < 7 else 2


class Speller:
    """Corrects the unknown Latin words of a question to the knowledge base's words.

    >>> s = Speller(Counter({"balance": 5, "refill": 3, "history": 2, "payment": 9}), known={"apns"})
    >>> s.correct("my balence and paymnet histroy, how to refil")
    'my balance and payment history, how to refill'
    >>> s.correct("apns wont save")  # a word the knowledge base knows, and a common English word
    'apns wont save'
    """

    def __init__(self, counts: Counter[str], known: Iterable[str] = (), min_zipf: float = 3.0):
        # Candidates: the knowledge base's Latin words, most used first, so a tie goes to the common one.
        self.candidates = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                           if LATIN_WORD.fullmatch(w) and len(w) >= 3]
        self.known = set(counts) | {normalise(w) for w in known}
        self.min_zipf = min_zipf
        self._cache: dict[str, str] = {}

    def word(self, word: str) -> str:
        """`word` (normalised), or the knowledge base's word it was meant to be."""
        if word in self._cache:
            return self._cache[word]
        fixed = word
        limit = allowed_edits(word)
        if limit and word not in self.known and english_zipf(word) < self.min_zipf:
            # Every candidate within the limit; the nearest wins, then the most used (candidates' order).
            # The first letter must match: people rarely mistype it, and it keeps "apns" from "apps".
            found = [(dist, rank, cand) for cand, dist, rank in
                     process.extract(word, self.candidates, scorer=OSA.distance, score_cutoff=limit, limit=None)
                     if cand[0] == word[0]]
            if found:
                fixed = min(found)[2]
        if len(self._cache) < 65536:
            self._cache[word] = fixed
        return fixed

    def correct(self, text: str) -> str:
        """`text` (normalised) with each unknown Latin word replaced by the word it was meant to be."""
        return LATIN_WORD.sub(lambda m: self.word(m.group(0)), text)


HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
# Characters whose place a slip of pinyin input is least likely to take, and which stand beside every word: a
# window that differs from a word of ours only there is two words, not one misspelt ("用的" is not "用得",
# "出了" not "除了").
FUNCTION_CHARS = frozenset("的得地是在再该应吗嘛了出时只之使实要就也都还和会有又到被把给让对说"
                           "去来过着吧呢啊么没不很太那这哪能可为所")


@lru_cache(maxsize=1)
def char_readings() -> dict[str, str]:
    """Each common Chinese character's first (most used) reading without its tone, from pypinyin's table.

    The table file is read directly: importing pypinyin loads its phrase dictionary too, about 58 MiB this
    lookup does not need."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("pypinyin")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pypinyin is not installed (requirements.txt)")
    table = json.loads((Path(spec.submodule_search_locations[0]) / "pinyin_dict.json").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    syllables: dict[str, str] = {}  # one string a syllable, shared by its characters (about 400 in all)
    for code, readings in table.items():
        char = chr(int(code))
        if "\u4e00" <= char <= "\u9fff":
            first = unicodedata.normalize("NFD", readings.split(",")[0]).replace("u\u0308", "v")  # lü as typed: lv
            sound = "".join(c for c in first if not unicodedata.combining(c))
            out[char] = syllables.setdefault(sound, sound)
    return out


def pinyin_of(word: str) -> tuple[str, ...] | None:
    """The toneless pinyin of `word`, one syllable a character; None when a character has none.

    >>> pinyin_of("充值"), pinyin_of("冲值"), pinyin_of("x值"), pinyin_of("绿路")
    (('chong', 'zhi'), ('chong', 'zhi'), None, ('lv', 'lu'))
    """
    table = char_readings()
    out = tuple(table.get(c, "") for c in word)
    return out if all(out) else None


class HanSpeller:
    """Reads a Chinese word typed by its sound as the knowledge base's word: 冲值 as 充值, 于额 as 余额, 续废 as
    续费, 古歌 as 谷歌.

    Pinyin input offers every character of a syllable, and a hurried writer takes the wrong one; the word
    model, the lexical ranker, the provider names and the coverage signal then do not know the word. A window
    of two to four characters is read as a word of ours when:

    - it is no word anyone knows (a word of the knowledge base, of the questions we decline, or of jieba's
      dictionary used `known_freq` times or more), and no such word reaches into it from outside, so a real
      word is never touched (储值会 is not read again); a known word inside it may stay (手续非 as 手续费);
    - it sounds as the word of ours does (toneless pinyin, each character's first reading) and shares a
      character with it, and it differs by no function character (的, 是, 了...) on either side;
    - the word of ours is the knowledge base's own: a content word (no function character), used
      `min_count` times or more, and `min_ratio` (natural log) more often in the knowledge base than in
      jieba's general dictionary, so 不回 is not read as 不会.

    >>> s = HanSpeller(Counter({"充值": 50, "余额": 30, "谷歌": 20}), general={"充值": 100, "余额": 500},
    ...                general_total=60_000_000)
    >>> s.correct("古歌语音冲值后于额不变")
    '谷歌语音充值后余额不变'
    >>> s.correct("用的是充值卡")
    '用的是充值卡'
    """

    def __init__(self, counts: Counter[str], known: Iterable[str] = (), general: dict[str, int] | None = None,
                 general_total: int = 1, min_count: int = 5, min_ratio: float = 3.5, known_freq: int = 5,
                 always: Iterable[str] = ()):
        """`counts`: the knowledge base's words and how often it uses them; `known`: more words nobody should
        have corrected; `general`, `general_total`: a general dictionary's counts (jieba's) and their sum;
        `always`: words of ours whatever their counts (the providers' Chinese names)."""
        import math

        self.general = general or {}
        self.known = {w for w in counts if HAN_RUN.fullmatch(w)} | {w for w in known if HAN_RUN.fullmatch(w)}
        self.known_freq = known_freq
        ours = sum(n for w, n in counts.items() if HAN_RUN.fullmatch(w)) or 1  # uses of Chinese words
        words = [w for w, n in counts.items() if HAN_RUN.fullmatch(w) and 2 <= len(w) <= 4 and n >= min_count
                 and not FUNCTION_CHARS.intersection(w)
                 and math.log((n / ours) / (max(self.general.get(w, 0), 1) / max(general_total, 1))) >= min_ratio]
        words += [w for w in always if HAN_RUN.fullmatch(w) and 2 <= len(w) <= 4]
        self.by_sound: dict[tuple[str, ...], str] = {}
        for w in sorted(dict.fromkeys(words), key=lambda w: (-counts.get(w, 0), w)):  # a tie goes to the most used
            sound = pinyin_of(w)
            if sound:
                self.by_sound.setdefault(sound, w)
        self.known.update(always)

    def _known(self, word: str) -> bool:
        return word in self.known or (self.general.get(word) or 0) >= self.known_freq

    def _fix(self, window: str) -> str | None:
        meant = self.by_sound.get(pinyin_of(window) or ())
        if not meant or meant == window:
            return None
        pairs = list(zip(window, meant, strict=True))
        if not any(a == b for a, b in pairs) or any(a != b and FUNCTION_CHARS.intersection(a + b) for a, b in pairs):
            return None
        return meant

    def _run(self, run: str) -> str:
        n = len(run)
        spans = {(a, b) for a in range(n) for b in range(a + 2, min(n, a + 6) + 1) if self._known(run[a:b])}

        def crossed(i: int, j: int) -> bool:  # a known word reaches into run[i:j] from outside it
            return any(a < j and b > i and not (i <= a and b <= j) for a, b in spans)

        out, i = [], 0
        while i < n:
            for size in (4, 3, 2):
                window = run[i:i + size]
                if (len(window) == size and (i, i + size) not in spans and not crossed(i, i + size)
                        and (meant := self._fix(window))):
                    out.append(meant)
                    i += size
                    break
            else:
                out.append(run[i])
                i += 1
        return "".join(out)

    def correct(self, text: str) -> str:
        """`text` (normalised: Simplified characters) with each Chinese word typed by its sound read as ours."""
        return HAN_RUN.sub(lambda m: self._run(m.group(0)), text)
