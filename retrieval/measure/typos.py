"""Typos injected into the development questions: how the assistant holds up when people type fast.

Real posts are full of typos and the development sets have few, so the speller could not be judged on them.
`with_typos` makes a seeded copy in which one Latin word of five letters or more (two, in a question with
more than four such words) has one typing slip: two letters swapped, one dropped, one doubled, or one hit
on the key beside it. Questions without such a word are left out. Same seed, same copy.

`with_chinese_typos` does the same for the slip of pinyin input: in one Chinese word of two to four
characters, one character replaced by another of the same sound, one that an input method offers on its first
page (the most used characters of that syllable, by jieba's counts).
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Protocol, TypeVar

import jieba

from retrieval.serving.spelling import char_readings
from retrieval.serving.text import normalise

LONG_WORD = re.compile(r"[A-Za-z]{5,}")
KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
SEED = 7


class HasText(Protocol):
    q: str


Q = TypeVar("Q", bound=HasText)


def neighbour(ch: str) -> str:
    """A key beside `ch` on a QWERTY keyboard (left on odd positions and at a row's end, else right);
    `ch` itself if it is not a letter.

    >>> neighbour("s"), neighbour("q"), neighbour("l"), neighbour("7")
    ('a', 'w', 'k', '7')
    """
    for row in KEY_ROWS:
        i = row.find(ch.lower())
        if i >= 0:
            return row[i - 1] if i % 2 or i == len(row) - 1 else row[i + 1]
    return ch


def slip(word: str, rng: random.Random) -> str:
    """`word` with one typing slip after its first letter; a swap of two equal letters, which would change
    nothing, drops one instead."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind in (0, 1):
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + neighbour(word[i]) + word[i + 1:]


def with_slips(text: str, rng: random.Random) -> str | None:
    """`text` with a slip in one long Latin word (two if it has more than four); None if it has none.

    >>> with_slips("how do I top up google voice", random.Random(1))
    'how do I top up gooogle voice'
    """
    found = list(LONG_WORD.finditer(text))
    if not found:
        return None
    chosen = rng.sample(found, 2 if len(found) > 4 else 1)
    for m in sorted(chosen, key=lambda m: -m.start()):
        text = text[:m.start()] + slip(m.group(), rng) + text[m.end():]
    return text


HAN_WORD = re.compile(r"[\u4e00-\u9fff]{2,4}")
OFFERED = 3  # how many characters of a syllable a slip chooses among, the most used first
MIN_CHAR_COUNT = 1000  # a character jieba counts less often is too rare for an input method's first page


def _by_sound() -> dict[str, list[str]]:
    """Each toneless syllable's common Simplified characters, most used first (jieba's counts of single
    characters)."""
    jieba.initialize()
    out: dict[str, list[tuple[int, str]]] = {}
    for char, sound in char_readings().items():
        count = jieba.dt.FREQ.get(char) or 0
        if count >= MIN_CHAR_COUNT and normalise(char) == char:  # Simplified: what the input method offers
            out.setdefault(sound, []).append((-count, char))
    return {sound: [c for _, c in sorted(chars)] for sound, chars in out.items()}


def with_chinese_slip(text: str, rng: random.Random, by_sound: dict[str, list[str]] | None = None) -> str | None:
    """`text` with one character of one Chinese word (jieba's, two to four characters) replaced by another of
    the same sound among the first few an input method offers; None if no word has one."""
    by_sound = _by_sound() if by_sound is None else by_sound
    readings = char_readings()
    places = []
    start = 0
    for word in jieba.cut(text, HMM=False):
        if HAN_WORD.fullmatch(word):
            for i, char in enumerate(word):
                others = [c for c in by_sound.get(readings.get(char, ""), [])[:OFFERED + 1] if c != char][:OFFERED]
                if others:
                    places.append((start + i, others))
        start += len(word)
    if not places:
        return None
    at, others = places[rng.randrange(len(places))]
    return text[:at] + others[rng.randrange(len(others))] + text[at + 1:]


def with_chinese_typos(questions: list[Q], seed: int = SEED) -> list[Q]:
    """A seeded copy of the questions that have a Chinese word, each with one slip of pinyin input."""
    rng, by_sound = random.Random(seed), _by_sound()
    out = []
    for q in questions:
        text = with_chinese_slip(q.q, rng, by_sound)
        if text is not None:
            out.append(dataclasses.replace(q, q=text))
    return out


def with_typos(questions: list[Q], seed: int = SEED) -> list[Q]:
    """A seeded copy of the questions that have a long Latin word, each with its slips."""
    rng = random.Random(seed)
    out = []
    for q in questions:
        text = with_slips(q.q, rng)
        if text is not None:
            out.append(dataclasses.replace(q, q=text))
    return out
