"""Conversation turns: the second message of a chat, scored as the page would answer it.

A turn file (eval/turns*.yaml) is a list of second messages, each after an answer about `provider` (null: a
general answer, or "which provider?") and `topic`, with what it should get:

- `{follow_up: mint_mobile}`: the previous question again, for another provider ("那 Mint 呢", "same for mint?");
- `{new_question: mint_mobile}` (optionally with `topic`): another provider named with a question of its own
  ("what is Mint"): answered about that provider, and not with the previous topic unless `topic` says so;
- `{small_talk: thanks}`: greetings, thanks, "who are you", goodbyes, "ok": that intent's short answer;
- `not_understood`: keyboard mashing gets "I didn't understand".

`python -m retrieval eval --turns eval/turns_blind.yaml` prints how many of each kind are right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from retrieval.serving.answer import Answer, Kind

KINDS = ("follow_up", "new_question", "small_talk", "not_understood")


@dataclass(frozen=True)
class Turn:
    provider: str | None  # the previous answer's provider (None: general advice, or "which provider?") and topic
    topic: str
    message: str
    kind: str            # one of KINDS
    value: str | None    # the provider or small-talk intent expected
    expect_topic: str | None = None  # a new question's topic, when its writer gave one


def load_turns(path: Path) -> list[Turn]:
    turns = []
    for n, item in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or [], 1):
        expect = item["expect"]
        if isinstance(expect, str):
            expect = {expect: None}
        kind = next((k for k in expect if k != "topic"), None)
        if kind not in KINDS:
            raise ValueError(f"{path.name}: turn {n}: expect must be one of {', '.join(KINDS)}, got {expect!r}")
        turns.append(Turn(item["provider"], item["topic"], str(item["message"]), kind, expect[kind],
                          expect.get("topic")))
    return turns


def right(turn: Turn, answer: Answer, small_talk_answers: dict[tuple[str, str], str]) -> bool:
    if turn.kind == "follow_up":
        return answer.kind is Kind.ANSWER and answer.provider == turn.value and answer.topic == turn.topic
    if turn.kind == "new_question":
        if answer.kind not in (Kind.ANSWER, Kind.CLARIFY) or answer.provider != turn.value:
            return False
        return answer.topic == turn.expect_topic if turn.expect_topic else answer.topic != turn.topic
    if turn.kind == "small_talk":
        return (answer.kind is Kind.SMALL_TALK
                and answer.markdown == small_talk_answers.get((turn.value, answer.language)))
    return answer.kind is Kind.NOT_UNDERSTOOD


def score(assistant, turns: list[Turn]) -> dict[str, tuple[int, int]]:
    """Per kind (and "all"): (right, asked)."""
    replies = {(intent.id, lang): text.strip() for intent in assistant.kb.conversation.small_talk.values()
               for lang, text in intent.answer.items()}
    counts = {kind: [0, 0] for kind in (*KINDS, "all")}
    for turn in turns:
        answer = assistant.ask(turn.message, provider=turn.provider, topic=turn.topic)
        ok = right(turn, answer, replies)
        for kind in (turn.kind, "all"):
            counts[kind][0] += ok
            counts[kind][1] += 1
    return {kind: (r, n) for kind, (r, n) in counts.items() if n}


def table(scores: dict[str, dict[str, tuple[int, int]]]) -> str:
    """One row per turn file: right / asked for each kind."""
    kinds = [k for k in (*KINDS, "all") if any(k in s for s in scores.values())]
    lines = ["| turns | " + " | ".join(k.replace("_", " ") for k in kinds) + " |",
             "|---|" + "---|" * len(kinds)]
    for name, s in scores.items():
        cells = [f"{s[k][0]} / {s[k][1]}" if k in s else "-" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
