"""Understanding: what a question says before anything is ranked.

Secrets are masked, long input cut, the language and the provider found, provider names taken out and
the vocabulary's variants made canonical (what is matched), and two things decided that need no model:
whether the message is only "that provider's turn" of the previous question ("那 Mint 呢"), and
whether it is typing by accident ("asdfgh").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.providers import ASCII_WORD, ProviderFinder
from retrieval.serving.safety import mask_secrets
from retrieval.serving.terms import Terms
from retrieval.serving.text import HAN, LATIN, language_of, normalise, words

# How much is scanned for secrets before the question is cut: a card number that straddles the cut
# is still seen whole, and a 4 MB paste costs no more than a few kilobytes.
SCAN_FACTOR = 4


@dataclass(frozen=True)
class Understood:
    """A question as the assistant reads it; everything after this looks only at these fields."""

    text: str                 # what the user typed: secrets masked, long input cut
    language: str             # "zh" or "en": the user's choice, else the script of the question
    provider: str | None      # named in the question, else the one chosen earlier
    named: str | None         # the provider this question names itself
    matched: str              # provider names out, the vocabulary's variants canonical: what is ranked
    follow_up: bool           # nothing but a provider's name and follow-up words ("那 Mint 呢")
    topic: str | None         # the previous answer's topic (kept by a follow-up)
    gibberish: bool           # no word anyone knows ("asdfgh"), or no letters at all ("？？？")
    notices: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()


@lru_cache(maxsize=4096)
def _english_zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


class Reader:
    """Turns a raw question into an `Understood`; built once per knowledge base, read-only after."""

    def __init__(self, kb: KnowledgeBase, known_words: set[str], max_chars: int = 500):
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        self.kb, self.max_chars = kb, max_chars
        self.finder = ProviderFinder(kb)
        self.terms = Terms(kb.vocabulary, kb.product_words)
        self.known_words = known_words
        self.follow_up_words = {normalise(w) for ws in kb.conversation.follow_up_words.values() for w in ws}
        self.known_zipf = kb.conversation.known_word_zipf

    def read(self, question: object, provider: object = None, language: object = None,
             topic: object = None) -> Understood:
        if not isinstance(question, str):
            question = "" if question is None else str(question)
        # Surrogates (a lone "\ud800") cannot be encoded and break every later step: drop them first.
        question = question.encode("utf-8", "replace").decode("utf-8")
        masked = mask_secrets(question[: self.max_chars * SCAN_FACTOR])
        text = masked.text.strip()
        lang = language if language in LANGUAGES else language_of(text, fallback="zh")
        notices = [self.kb.message("secret_warning", lang)] if masked.had_secrets else []
        if len(question.strip()) > self.max_chars:
            notices.append(self.kb.message("truncated", lang, limit=self.max_chars))
        text = text[: self.max_chars]
        carried = provider if isinstance(provider, str) and provider in self.kb.providers else None
        mentions = self.finder.find_all(text)
        named = mentions[0].provider if mentions else None
        rest = self.finder.strip(text, keep_names_if_empty=False, matches=mentions)
        topic = topic if isinstance(topic, str) and topic in self.kb.topics else None
        return Understood(
            text=text, language=lang, provider=named or carried, named=named,
            matched=self.terms.apply(rest or normalise(text)),
            follow_up=named is not None and self._only_follow_up_words(rest),
            topic=topic, gibberish=bool(text) and self._gibberish(rest if named else text),
            notices=tuple(notices), secrets=masked.found)

    def _only_follow_up_words(self, rest: str) -> bool:
        return all(w in self.follow_up_words for w in words(rest))

    def _gibberish(self, text: str) -> bool:
        """No Chinese, and not one Latin word known to the knowledge base or to English."""
        if HAN.search(text):
            return False
        if not LATIN.search(text):
            return bool(re.sub(r"\s", "", text))  # "？？？", emoji, digits alone; "" is a bare provider name
        found = [re.sub(r"[\s&]", "", m.group()) for m in ASCII_WORD.finditer(normalise(text))]
        return not any(w in self.known_words or w in self.follow_up_words or _english_zipf(w) >= self.known_zipf
                       for w in found if not w.isdigit())
