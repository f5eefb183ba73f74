"""Answers: what the assistant returns, and the Markdown it shows, taken word for word from the knowledge base."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from retrieval.knowledge import KnowledgeBase, older_than_years
from retrieval.serving.chunks import Chunk


class Kind(StrEnum):
    ANSWER = "answer"
    ASK_PROVIDER = "ask_provider"   # the question needs a provider and none is known
    CLARIFY = "clarify"             # two entries are too close to call
    DECLINE = "decline"             # out of scope, or too unsure
    EMPTY = "empty"                 # nothing was asked
    SMALL_TALK = "small_talk"       # hello, thanks, who are you: a short friendly answer
    NOT_UNDERSTOOD = "not_understood"  # gibberish: "I didn't understand"


# Kinds that do not help the user with what they asked: counted as unanswered everywhere.
UNANSWERED = frozenset({Kind.DECLINE, Kind.EMPTY, Kind.NOT_UNDERSTOOD})


@dataclass(frozen=True)
class Hit:
    """An entry offered for a question. Hits come best first, ordered by `score`."""

    chunk_id: str
    entry_id: str
    provider: str
    topic: str
    score: float       # the probability the assistant gives this answer (what the hits are ordered by)
    title: str
    text: str
    similarity: float = 0.0  # best cosine between the question and the entry's phrasings (not an order)

    def to_json(self) -> dict:
        return {"chunk_id": self.chunk_id, "entry_id": self.entry_id, "provider": self.provider,
                "topic": self.topic, "score": round(self.score, 4), "similarity": round(self.similarity, 4),
                "title": self.title, "text": self.text}


@dataclass(frozen=True)
class Choice:
    """A button: asking `question` again with `provider` set, or opening one entry directly."""

    label: str
    question: str
    provider: str | None = None
    entry_id: str | None = None


@dataclass(frozen=True)
class Answer:
    question: str                  # as understood: secrets masked, long input cut
    language: str
    provider: str | None
    kind: Kind
    markdown: str
    topic: str | None = None       # what the answer is about; a follow-up "what about X?" keeps it
    hits: tuple[Hit, ...] = ()
    entry_id: str | None = None
    choices: tuple[Choice, ...] = ()
    related: tuple[Choice, ...] = ()
    notices: tuple[str, ...] = ()  # said before the answer: secrets masked, question cut
    # An ask-back's parts, for a page that shows the question and its buttons first and folds the
    # general advice below them; `markdown` holds both, for the command line.
    lead: str = ""
    details: str = ""
    has_steps: bool = False

    @property
    def answered(self) -> bool:
        """The one definition, used by the command line, the page and the store: anything but a decline,
        an empty question or gibberish. `kind` says which (an answer, an ask-back, "did you mean", small talk)."""
        return self.kind not in UNANSWERED

    def to_json(self) -> dict:
        """The contract's JSON line, plus a few fields of our own."""
        return {
            "question": self.question, "language": self.language, "provider": self.provider,
            "answered": self.answered, "hits": [h.to_json() for h in self.hits],
            "answer": self.markdown, "kind": self.kind.value, "topic": self.topic, "entry_id": self.entry_id,
            "choices": [c.__dict__ for c in self.choices], "notices": list(self.notices),
        }


OLD_SOURCE_YEARS = 2  # a fact resting on a page older than this says so under the answer


def render_chunk(kb: KnowledgeBase, chunk: Chunk, language: str, today: dt.date | None = None) -> str:
    """The entry as Markdown: title, answer, numbered steps, official links, a note when a cited page is
    more than two years old, and the checked date."""
    parts = [f"**{chunk.title}**", chunk.text.strip()]
    if chunk.steps:
        lines = [f"**{kb.message('steps_heading', language)}**", ""]
        for n, step in enumerate(chunk.steps, 1):
            lines.append(f"{n}. {step.do}")
            if step.expect:
                lines.append(f"   - {kb.message('step_expect', language, text=step.expect)}")
        parts.append("\n".join(lines))
    if chunk.links:
        links = "\n".join(f"- [{link.title}]({link.url})" for link in chunk.links)
        parts.append(f"**{kb.message('links_heading', language)}**\n\n{links}")
    if older_than_years(chunk.source_date, OLD_SOURCE_YEARS, today or dt.date.today()):
        parts.append(f"_{kb.message('old_source', language, date=chunk.source_date)}_")
    parts.append(f"_{kb.message('checked', language, date=chunk.checked)}_")
    return "\n\n".join(parts)
