"""Typos injected into the development questions: how the assistant holds up when people type fast.

Real posts are full of typos and the development sets have few, so the speller could not be judged on them.
`with_typos` makes a seeded copy in which one Latin word of five letters or more (two, in a question with
more than four such words) has one typing slip: two letters swapped, one dropped, one doubled, or one hit
on the key beside it. Questions without such a word are left out. Same seed, same copy.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Protocol, TypeVar

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


def with_typos(questions: list[Q], seed: int = SEED) -> list[Q]:
    """A seeded copy of the questions that have a long Latin word, each with its slips."""
    rng = random.Random(seed)
    out = []
    for q in questions:
        text = with_slips(q.q, rng)
        if text is not None:
            out.append(dataclasses.replace(q, q=text))
    return out
