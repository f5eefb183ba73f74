"""English: is a word at least so common in English? wordfreq's answer, without its whole word list in memory.

wordfreq keeps its 321,000-word English list (27 MiB) for as long as the process lives once it has been asked
one word. The question here is only ever "is the word's Zipf frequency at least `min_zipf`?", so only the
words that can pass are kept (about 29,000 at Zipf 3), and the frequency is worked out as wordfreq 3.1's
`zipf_frequency(word, "en")` does it: its tokens, numbers smashed and weighed, frequencies combined, rounded.
A word built from a rarer token lands below the bar either way: every token left out is at least MARGIN
below it, and wordfreq's rounding moves a value by less than that.

>>> common = CommonWords(3.0)
>>> common("recharge"), common("asdfgh")
(True, False)
"""

from __future__ import annotations

import functools
import math
import threading

MARGIN = 0.05   # Zipf units: how far below the bar the rarest word kept is
MINIMUM = 1e-9  # zipf_frequency's floor (Zipf 0), for a word it does not know


class CommonWords:
    """`words(w)` is `wordfreq.zipf_frequency(w, "en") >= min_zipf`; the list is read at the first question."""

    def __init__(self, min_zipf: float):
        if not 0 <= min_zipf <= 8:
            raise ValueError(f"min_zipf must be from 0 to 8, got {min_zipf!r}")
        self.min_zipf = min_zipf
        self._frequencies: dict[str, float] | None = None
        self._lock = threading.Lock()

    def __call__(self, word: str) -> bool:
        return self.zipf(word) >= self.min_zipf

    def zipf(self, word: str) -> float:
        """wordfreq's Zipf frequency of `word` when it is at least min_zipf - MARGIN; something lower otherwise."""
        from wordfreq import lossy_tokenize
        from wordfreq.numbers import digit_freq, smash_numbers

        frequencies = self._frequencies if self._frequencies is not None else self._load()
        tokens = lossy_tokenize(word, "en")
        if not tokens:
            return 0.0
        one_over = 0.0
        for token in tokens:
            smashed = smash_numbers(token)
            if smashed not in frequencies:
                return 0.0
            frequency = frequencies[smashed]
            if smashed != token:
                frequency *= digit_freq(token)
            one_over += 1.0 / frequency
        unrounded = max(1.0 / one_over, MINIMUM)
        frequency = round(unrounded, math.floor(-math.log(unrounded, 10)) + 3)
        return round(math.log(frequency, 10) + 9, 2)

    def _load(self) -> dict[str, float]:
        from wordfreq import available_languages, cB_to_freq, read_cBpack

        with self._lock:
            if self._frequencies is None:
                # Bucket i holds the words of frequency -i centibels (Zipf (900 - i) / 100), most frequent first.
                last = math.floor(900 - 100 * (self.min_zipf - MARGIN))
                buckets = read_cBpack(available_languages("best")["en"])
                # Fresh copies of the words kept: the list's own strings would pin its memory in place.
                self._frequencies = {"".join(word): cB_to_freq(-i) for i, bucket in enumerate(buckets[:last + 1])
                                     for word in bucket}
                del buckets
        return self._frequencies


@functools.lru_cache(maxsize=4)
def common_words(min_zipf: float) -> CommonWords:
    """One CommonWords per bar for the whole process, as wordfreq keeps one list: every Reader shares it."""
    return CommonWords(min_zipf)
