"""Spelling: a misspelt English word read as the knowledge base's word it is one or two edits from.

Real posts are typed fast ("balence", "paymnet", "refil", "histroy"). The embedding blurs a typo, but the
word model, the lexical ranker and the coverage signal do not know the word at all, so a typo alone could
make a question look like something we decline. Only words nobody knows are touched: a word the knowledge
base uses anywhere (its questions to decline included), or a common English word (wordfreq), stays as typed.
"""

from __future__ import annotations

import re
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
