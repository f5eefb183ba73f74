"""Providers: recognise which provider a question names, from the knowledge base's aliases (and, with the
same finder, which service that is not ours it names: knowledge/other_services.yaml)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz.distance import OSA

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.text import AMPERSAND, HAN, normalise

# An ASCII word; "at&t" and "at & t" are one word.
ASCII_WORD = re.compile(r"[a-z0-9]+(?:\s*&\s*[a-z0-9]+)*")
MAX_WINDOW = 4  # "at and t" is the longest alias in words
# What may stand between two words of one name: spaces and the marks people put inside names ("t-mobile",
# "u.s. mobile"), never another word or a Chinese character ("lycamobile怎么关自动续费…扣我$23" is no "lycamobile us").
NAME_GAP = re.compile(r"[\s\-_./·']*")


def compact(text: str) -> str:
    """Lower case, Simplified, and nothing but letters, digits and Chinese characters."""
    return "".join(ch for ch in AMPERSAND.sub("", normalise(text)) if ch.isalnum())


def _allowed_typos(alias: str) -> int:
    """Edits (a swap counts as one) still read as the alias: none for names under 7 letters, which
    collide with ordinary words ("mobile" is one edit from T-Mobile, "voice" from GVoice)."""
    if len(alias) >= 10:
        return 2
    return 1 if len(alias) >= 7 else 0


def _latin_run(edge: str, norm: str, beside: int) -> bool:
    """Whether a mixed alias's Latin `edge` letter runs on into a Latin word at `beside`: "A家" is no name inside
    "visa家里人", nor "谷歌voice" inside "谷歌voicemail"."""
    return edge.isascii() and 0 <= beside < len(norm) and norm[beside].isascii() and norm[beside].isalnum()


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.sub(r"[\s&]", "", m.group()) for m in ASCII_WORD.finditer(normalise(text)))


@dataclass(frozen=True)
class ProviderMatch:
    provider: str
    alias: str
    start: int  # span in normalise(question)
    end: int
    exact: bool
    hint: bool = False  # a word that names no provider but says which one ("voice credit"): never stripped


class ProviderFinder:
    """Finds provider names in a question, tolerating case, spacing, hyphens and small typos.

    `names` (id -> names) finds other things the same way, without typos: the services that are not ours.
    """

    def __init__(self, kb: KnowledgeBase, names: Mapping[str, Iterable[str]] | None = None):
        self.han: list[tuple[str, str]] = []  # (compact alias, provider), for aliases with Chinese
        self.ascii: dict[str, str] = {}       # compact alias -> provider: matched by one typed word
        self.phrases: dict[tuple[str, ...], str] = {}  # alias words -> provider: matched word for word
        ours = names is None
        if names is None:
            names = {p.id: (*p.aliases, p.name["en"]) for p in kb.providers.values()}
        for provider, aliases in names.items():
            for alias in aliases:
                self._add(alias, provider)
        # names only, not hints, are read through a typo
        self.fuzzy = [(a, p, _allowed_typos(a), n) for words, p in self.phrases.items()
                      if ours and _allowed_typos(a := "".join(words)) for n in {1, len(words)}]
        # hints (Provider.hints) are found as names are, exactly, and left in the question by `strip`
        self.hints = {compact(h) for p in kb.providers.values() for h in p.hints} if ours else set()
        for p in kb.providers.values() if ours else ():
            for hint in p.hints:
                self._add(hint, p.id)
        self.han.sort(key=lambda item: -len(item[0]))
        suffixes = sorted((compact(x) for x in kb.name_suffixes), key=len, reverse=True) if ours else []
        self.suffix = re.compile(r"\s*(?:" + "|".join(map(re.escape, suffixes)) + r")") if suffixes else None

    def _add(self, name: str, provider: str) -> None:
        key = compact(name)
        if not key:
            return
        if HAN.search(key):
            self.han.append((key, provider))
        else:
            self.ascii.setdefault(key, provider)
            self.phrases.setdefault(_words(name), provider)

    def _han_matches(self, norm: str) -> list[ProviderMatch]:
        """Chinese (or mixed) aliases, found in the text with spaces and punctuation ignored."""
        positions = [i for i, ch in enumerate(norm) if ch.isalnum()]
        squeezed = "".join(norm[i] for i in positions)
        found = []
        for key, provider in self.han:
            at = squeezed.find(key)
            while at >= 0:
                start, end = positions[at], positions[at + len(key) - 1] + 1
                if not (_latin_run(key[0], norm, start - 1) or _latin_run(key[-1], norm, end)):
                    found.append(ProviderMatch(provider, key, start, end, True, key in self.hints))
                at = squeezed.find(key, at + 1)
        return found

    def _ascii_matches(self, norm: str) -> list[ProviderMatch]:
        """Latin aliases: one typed word ("tmobile"), the alias's own words ("t mobile", "t-mobile"),
        or either with a small typo that keeps the first letter ("goolge voice", "verizion")."""
        words = [(re.sub(r"[\s&]", "", m.group()), m.start(), m.end()) for m in ASCII_WORD.finditer(norm)]
        found = []
        for i in range(len(words)):
            for j in range(i + 1, min(i + MAX_WINDOW, len(words)) + 1):
                if j - i > 1 and not NAME_GAP.fullmatch(norm, words[j - 2][2], words[j - 1][1]):
                    break  # the next word is not part of the same name, nor any after it
                typed = tuple(w for w, _, _ in words[i:j])
                window = "".join(typed)
                start, end = words[i][1], words[j - 1][2]
                provider = self.ascii.get(window) if j == i + 1 else self.phrases.get(typed)
                if provider:
                    found.append(ProviderMatch(provider, window, start, end, True, window in self.hints))
                    continue
                for alias, provider, limit, n_words in self.fuzzy:
                    if n_words == j - i and abs(len(alias) - len(window)) <= 1 and alias[0] == window[0] \
                            and OSA.distance(alias, window, score_cutoff=limit) <= limit:
                        found.append(ProviderMatch(provider, alias, start, end, False))
        return found

    def find_all(self, question: str) -> list[ProviderMatch]:
        """Every mention, best first: exact before near-miss, then longer, then earlier."""
        norm = normalise(question)
        found = self._han_matches(norm) + self._ascii_matches(norm)
        return sorted(found, key=lambda m: (not m.exact, m.start, -(m.end - m.start)))

    def find(self, question: str) -> str | None:
        """The provider the question is about: the first one named, exact names before near-misses."""
        found = self.find_all(question)
        return found[0].provider if found else None

    def strip(self, question: str, keep_names_if_empty: bool = True,
              matches: list[ProviderMatch] | None = None) -> str:
        """The question (normalised) with every provider name taken out, so what is left says what is asked;
        a question that is nothing but a name stays as it is unless `keep_names_if_empty` is False.
        `matches` are find_all's, when the caller has them already."""
        norm = normalise(question)
        keep = [True] * len(norm)
        for m in self.find_all(question) if matches is None else matches:
            if m.hint:
                continue
            end = m.end
            if self.suffix and (after := self.suffix.match(norm, end)):
                end = after.end()
            keep[m.start:end] = [False] * (end - m.start)
        stripped = " ".join("".join(ch for ch, k in zip(norm, keep, strict=True) if k).split())
        return stripped or (norm if keep_names_if_empty else "")
