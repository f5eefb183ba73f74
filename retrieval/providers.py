"""Providers: recognise which provider a question names, from the knowledge base's aliases."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz.distance import OSA

from .knowledge import KnowledgeBase
from .text import AMPERSAND, HAN, normalise

ASCII_WORD = re.compile(r"[a-z0-9]+")
MAX_WINDOW = 4  # "at and t" is the longest alias in words


def compact(text: str) -> str:
    """Lower case, Simplified, and nothing but letters, digits and Chinese characters."""
    return "".join(ch for ch in AMPERSAND.sub("", normalise(text)) if ch.isalnum())


def _allowed_typos(alias: str) -> int:
    """Edits (a swap counts as one) still read as the alias: none for short names."""
    if len(alias) >= 9:
        return 2
    return 1 if len(alias) >= 6 else 0


@dataclass(frozen=True)
class ProviderMatch:
    provider: str
    alias: str
    position: int
    exact: bool


class ProviderFinder:
    """Finds provider names in a question, tolerating case, spacing, hyphens and small typos."""

    def __init__(self, kb: KnowledgeBase):
        self.han: list[tuple[str, str]] = []  # (compact alias, provider), for aliases with Chinese
        self.ascii: dict[str, str] = {}       # compact alias -> provider
        for provider in kb.providers.values():
            for alias in (*provider.aliases, provider.name["en"]):
                key = compact(alias)
                if not key:
                    continue
                if HAN.search(key):
                    self.han.append((key, provider.id))
                else:
                    self.ascii.setdefault(key, provider.id)
        self.han.sort(key=lambda item: -len(item[0]))

    def find_all(self, question: str) -> list[ProviderMatch]:
        matches: dict[str, ProviderMatch] = {}

        def keep(m: ProviderMatch) -> None:
            old = matches.get(m.provider)
            if old is None or (m.exact, len(m.alias), -m.position) > (old.exact, len(old.alias), -old.position):
                matches[m.provider] = m

        text = compact(question)
        for key, provider in self.han:
            at = text.find(key)
            if at >= 0:
                keep(ProviderMatch(provider, key, at, True))
        words = [(m.group(), m.start()) for m in ASCII_WORD.finditer(AMPERSAND.sub("", normalise(question)))]
        for i in range(len(words)):
            for j in range(i + 1, min(i + MAX_WINDOW, len(words)) + 1):
                window = "".join(w for w, _ in words[i:j])
                provider = self.ascii.get(window)
                if provider:
                    keep(ProviderMatch(provider, window, words[i][1], True))
                    continue
                for alias, provider in self.ascii.items():
                    limit = _allowed_typos(alias)
                    if limit and abs(len(alias) - len(window)) <= limit and \
                            OSA.distance(alias, window, score_cutoff=limit) <= limit:
                        keep(ProviderMatch(provider, alias, words[i][1], False))
        return sorted(matches.values(), key=lambda m: (not m.exact, m.position))

    def find(self, question: str) -> str | None:
        """The provider the question is about: the first one named, exact names before near-misses."""
        found = self.find_all(question)
        return found[0].provider if found else None
