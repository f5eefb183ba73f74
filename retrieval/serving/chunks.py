"""Chunks: the knowledge base cut into what is searched (keys) and what is shown (chunks)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from retrieval.knowledge import LANGUAGES, Entry, KnowledgeBase, Link, Step


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


@dataclass(frozen=True)
class Key:
    """One searchable text of an entry: a phrasing users ask, its title, or its answer."""

    entry_id: str  # "" for off_topic
    kind: str  # question (a phrasing or title, provider names taken out) | answer | off_topic
    language: str
    text: str


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
    so what is left is matched on what is asked), and answers as written."""
    from retrieval.serving.providers import ProviderFinder

    strip = ProviderFinder(kb).strip if strip_providers else (lambda text: text)
    keys = []
    for e in kb.entries:
        for lang in LANGUAGES:
            phrasings = dict.fromkeys(strip(q) for q in (*e.questions[lang], e.title[lang]))
            keys += [Key(e.id, "question", lang, q) for q in phrasings]
            keys.append(Key(e.id, "answer", lang, e.answer[lang]))
    for lang, texts in kb.off_topic.items():
        keys += [Key("", "off_topic", lang, t) for t in texts]
    return keys
