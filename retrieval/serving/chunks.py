"""Chunks: the knowledge base cut into what is searched (keys) and what is shown (chunks)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum

from retrieval.knowledge import LANGUAGES, Entry, KnowledgeBase, Link, Step
from retrieval.serving.text import normalise


@dataclass(frozen=True)
class Chunk:
    """One entry in one language: what an answer shows."""

    id: str
    entry_id: str
    provider: str
    topic: str
    language: str
    title: str
    text: str
    steps: tuple[Step, ...]
    links: tuple[Link, ...]
    checked: str
    source_date: str = ""  # the date of the oldest dated page the entry cites: an answer says when it is old

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Chunk:
        return cls(**{**d, "steps": tuple(Step(**s) for s in d["steps"]),
                      "links": tuple(Link(**link) for link in d["links"])})


class KeyKind(StrEnum):
    QUESTION = "question"      # a phrasing or title of an entry, provider names taken out
    ANSWER = "answer"          # an entry's answer text
    OFF_TOPIC = "off_topic"    # a question we decline (knowledge/out_of_scope.yaml)
    SMALL_TALK = "small_talk"  # hello, thanks, who are you (knowledge/conversation.yaml)


@dataclass(frozen=True)
class Key:
    """One searchable text: a phrasing users ask, an entry's title or answer, a question we decline, small talk."""

    entry_id: str  # the entry's id; "" for off_topic; the small-talk intent for small_talk
    kind: KeyKind
    language: str
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", KeyKind(self.kind))  # read back from JSON as a plain string


def chunk_id(entry: Entry, language: str) -> str:
    """A stable id derived from the chunk's content, so unchanged entries keep their ids."""
    content = json.dumps({
        "entry": entry.id, "provider": entry.provider, "topic": entry.topic, "language": language,
        "title": entry.title[language], "text": entry.answer[language],
        "steps": [asdict(s) for s in entry.steps.get(language, ())],
    }, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def entry_chunk(e: Entry, lang: str) -> Chunk:
    oldest = e.oldest_source()
    return Chunk(id=chunk_id(e, lang), entry_id=e.id, provider=e.provider, topic=e.topic, language=lang,
                 title=e.title[lang], text=e.answer[lang], steps=e.steps.get(lang, ()), links=e.links,
                 checked=e.checked.isoformat(), source_date=oldest.date if oldest else "")


def make_chunks(kb: KnowledgeBase) -> list[Chunk]:
    return [entry_chunk(e, lang) for e in kb.entries for lang in LANGUAGES]


def make_keys(kb: KnowledgeBase, strip_providers: bool = True) -> list[Key]:
    """Phrasings and titles with provider names taken out (the provider is recognised separately,
    so what is left is matched on what is asked) and the vocabulary's variants made canonical, exactly
    as a question is read; answers as written; questions we decline; small talk."""
    from retrieval.serving.providers import ProviderFinder
    from retrieval.serving.terms import Terms

    strip = ProviderFinder(kb).strip if strip_providers else normalise
    terms = Terms(kb.vocabulary, kb.product_words)
    keys = []
    own: dict[tuple[str, str], dict[str, None]] = {}
    for e in kb.entries:
        for lang in LANGUAGES:
            written = e.questions[lang][: len(e.questions[lang]) - len(e.learned.get(lang, ()))]
            own[e.id, lang] = phrasings = dict.fromkeys(terms.apply(strip(q)) for q in (*written, e.title[lang]))
            keys += [Key(e.id, KeyKind.QUESTION, lang, q) for q in phrasings]
            keys.append(Key(e.id, KeyKind.ANSWER, lang, e.answer[lang]))
    for lang, texts in kb.off_topic.items():
        written = texts[: len(texts) - len(kb.learned_off_topic.get(lang, ()))]
        keys += [Key("", KeyKind.OFF_TOPIC, lang, terms.apply(strip(t))) for t in dict.fromkeys(written)]
    for intent in kb.conversation.small_talk.values():
        for lang, texts in intent.questions.items():
            keys += [Key(intent.id, KeyKind.SMALL_TALK, lang, normalise(t)) for t in dict.fromkeys(texts)]
    # What knowledge/learned/ adds comes last, so every key written by hand keeps its place (the classifiers'
    # context-augmented copies are chosen by position): an action changes only what it adds.
    for e in kb.entries:
        for lang, texts in e.learned.items():
            more = dict.fromkeys(p for q in texts if (p := terms.apply(strip(q))) not in own[e.id, lang])
            keys += [Key(e.id, KeyKind.QUESTION, lang, q) for q in more]
    for lang, texts in kb.learned_off_topic.items():
        keys += [Key("", KeyKind.OFF_TOPIC, lang, terms.apply(strip(t))) for t in dict.fromkeys(texts)]
    return keys
