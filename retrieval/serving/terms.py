"""Terms: the many words people use for one thing ("交话费", "refill", "pay my bill") read as one word."""

from __future__ import annotations

import re

from retrieval.knowledge import TermGroup
from retrieval.serving.text import HAN, normalise


def phrase_pattern(phrases) -> re.Pattern | None:
    """One pattern for normalised phrases, longest first: Latin ones as whole words ("refill", not
    "refilled"), Chinese ones anywhere; None for no phrases.

    >>> phrase_pattern(["美国号", "us number"]).findall("我的美国号码 my us number, us numbers")
    ['美国号', 'us number']
    """
    parts = []
    for phrase in sorted(phrases, key=len, reverse=True):
        escaped = re.escape(phrase)
        parts.append(escaped if HAN.match(phrase) else rf"(?<![a-z0-9]){escaped}(?![a-z0-9])")
    return re.compile("|".join(parts)) if parts else None


class Terms:
    """Replaces every variant in knowledge/vocabulary.yaml by its group's canonical word, longest first.

    Applied the same way to the knowledge base's phrasings (when the index is built) and to questions,
    on text already normalised (lower case, Simplified):

    >>> from retrieval.knowledge import TermGroup
    >>> t = Terms([TermGroup("top_up", {"zh": "充值", "en": "top up"},
    ...                      {"zh": ("交话费", "续费"), "en": ("refill", "pay my bill")})])
    >>> t.apply("t-mobile 怎么交话费"), t.apply("how do i pay my bill"), t.apply("refilled")
    ('t-mobile 怎么充值', 'how do i top up', 'refilled')
    """

    def __init__(self, groups: tuple[TermGroup, ...] | list[TermGroup], dropped: tuple[str, ...] = ()):
        self.canonical: dict[str, str] = {}
        for group in groups:
            for lang, variants in group.variants.items():
                for variant in variants:
                    self.canonical.setdefault(normalise(variant), normalise(group.canonical[lang]))
        for word in dropped:  # words that name the product in general: taken out like a provider's name
            self.canonical.setdefault(normalise(word), " ")
        for group in groups:  # a canonical word is matched whole, so a shorter variant inside it is left alone
            for word in group.canonical.values():  # ("自动续费" keeps its "续费", "payment declined" its "declined")
                self.canonical.setdefault(normalise(word), normalise(word))
        self.pattern = phrase_pattern(self.canonical)

    def apply(self, text: str) -> str:
        """`text` (normalised) with each variant replaced by its canonical word."""
        if self.pattern is None:
            return text
        # a question that is nothing but product words keeps them: something must be matched
        return " ".join(self.pattern.sub(lambda m: self.canonical[m.group(0)], text).split()) or text
