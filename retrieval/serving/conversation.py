"""Conversation: what the chat page keeps of one conversation, and the JSON it is saved as so a reload restores it.

>>> from retrieval.serving.answer import Answer, Kind
>>> turn = Turn("GV怎么充值", Answer("GV怎么充值", "zh", "google_voice", Kind.ANSWER, "**给 GV 充值**"), 7)
>>> Turn.from_json(turn.to_json()) == turn
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.answer import Answer, Choice, Kind
from retrieval.serving.text import HAN, LATIN
from retrieval.serving.walkthrough import Walkthrough

# Answers that say nothing about a topic: the one before stays for a follow-up.
KEEPS_TOPIC = frozenset({Kind.SMALL_TALK, Kind.NOT_UNDERSTOOD, Kind.EMPTY})
FORMAT = 1  # bump when the saved shape changes; older copies are then ignored, not misread
MAX_TURNS = 10_000


@dataclass
class Turn:
    """One question and its answer, as the page shows them."""

    said: str                      # the user's bubble: what they typed (masked, cut) or the button they clicked
    answer: Answer
    interaction: int | None = None  # the store's id for this question; None when it could not be saved
    rating: int | None = None      # 1 👍, 0 👎
    comment: str = ""              # as stored: masked

    def to_json(self) -> dict:
        a = self.answer
        return {"said": self.said, "interaction": self.interaction, "rating": self.rating, "comment": self.comment,
                "answer": {"question": a.question, "language": a.language, "provider": a.provider,
                           "kind": a.kind.value, "markdown": a.markdown, "topic": a.topic, "entry_id": a.entry_id,
                           "choices": [c.__dict__ for c in a.choices], "related": [c.__dict__ for c in a.related],
                           "notices": list(a.notices), "lead": a.lead, "details": a.details,
                           "has_steps": a.has_steps}}

    @classmethod
    def from_json(cls, data: dict) -> Turn:
        a = data["answer"]

        def choices(items) -> tuple[Choice, ...]:
            return tuple(Choice(str(c["label"]), str(c["question"]), c.get("provider"), c.get("entry_id"))
                         for c in items)

        answer = Answer(question=str(a["question"]), language=str(a["language"]), provider=a.get("provider"),
                        kind=Kind(a["kind"]), markdown=str(a["markdown"]), topic=a.get("topic"),
                        entry_id=a.get("entry_id"), choices=choices(a.get("choices", ())),
                        related=choices(a.get("related", ())), notices=tuple(map(str, a.get("notices", ()))),
                        lead=str(a.get("lead", "")), details=str(a.get("details", "")),
                        has_steps=bool(a.get("has_steps")))
        interaction = data.get("interaction")
        rating = data.get("rating")
        return cls(str(data["said"]), answer,
                   interaction if isinstance(interaction, int) and not isinstance(interaction, bool) else None,
                   rating if rating in (0, 1) and not isinstance(rating, bool) else None,
                   str(data.get("comment") or ""))


@dataclass
class Conversation:
    """Everything a reload must bring back: the turns, the walkthrough and where it stands, the context.

    It is saved in pieces, so the cost of saving stays the same however long the conversation grows: a small
    head (`head_json`) under the conversation's id, and each turn under `turn_key(id, n)`, written once when
    it is answered and again only when it is rated.
    """

    turns: list[Turn] = field(default_factory=list)
    walk: Walkthrough | None = None
    walk_open: bool = True         # folded away when the user moved on to another provider or task
    provider: str | None = None    # chosen or recognised earlier; carried into the next question
    topic: str | None = None       # the last answer's topic, so "what about Mint?" keeps it
    language: str = "auto"         # the user's choice: auto, zh or en

    def remember(self, answer: Answer) -> None:
        """Carry what the answer says into the next question: the provider it is about (not a declined
        question's), and its topic, unless it said nothing about one (small talk, "I didn't understand", nothing
        typed): "Tello 怎么充值", "thanks!", "那 Mint 呢" still asks how to top up Mint."""
        if answer.provider and answer.kind is not Kind.DECLINE:
            self.provider = answer.provider
        if answer.kind not in KEEPS_TOPIC:
            self.topic = answer.topic

    def shown_language(self, fallback: str) -> str:
        """The conversation's language: the user's choice, else the last answer's, else `fallback` (the
        browser's). The page's own labels are in it."""
        if self.language != "auto":
            return self.language
        return self.turns[-1].answer.language if self.turns else fallback

    def answer_language(self, question: str, fallback: str) -> str | None:
        """The language to answer `question` in: the user's choice; else, for a message with no letters ("👍",
        "？？？"), the conversation's (`shown_language`); else None: the question's own."""
        if self.language == "auto" and (HAN.search(question) or LATIN.search(question)):
            return None
        return self.shown_language(fallback)

    def head_json(self) -> dict:
        return {"format": FORMAT, "turns": len(self.turns), "walk": self.walk.to_json() if self.walk else None,
                "walk_open": self.walk_open, "provider": self.provider, "topic": self.topic,
                "language": self.language}

    @classmethod
    def restore(cls, head: object, load_turn: Callable[[int], object], kb: KnowledgeBase) -> Conversation | None:
        """The saved conversation, or None when it is missing, of another format or damaged. A walkthrough or
        provider the knowledge base no longer has is dropped rather than shown broken; the turns are read up
        to the first one missing or damaged."""
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            return None
        count = head.get("turns")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_TURNS:
            return None
        turns = []
        for n in range(count):
            try:
                turns.append(Turn.from_json(load_turn(n)))
            except (KeyError, TypeError, ValueError, AttributeError):
                break
        provider = head.get("provider") if head.get("provider") in kb.providers else None
        language = head.get("language") if head.get("language") in ("auto", "zh", "en") else "auto"
        topic = head.get("topic") if isinstance(head.get("topic"), str) else None
        return cls(turns, Walkthrough.from_json(kb, head.get("walk")), bool(head.get("walk_open", True)), provider,
                   topic, language)


def turn_key(conversation_id: str, n: int) -> str:
    """Where turn `n` of a conversation is kept, beside its head."""
    return f"{conversation_id}.{n}"
