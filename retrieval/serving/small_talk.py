"""Small talk: a message made of nothing but small-talk phrases ("thanks a lot, that helped", "好的谢谢拜拜").

The phrases are knowledge/conversation.yaml's. A message is read as units (a Latin word, or one Chinese
character; punctuation aside, a letter typed again and again read once, chat shorthand such as "u" read as
"you") and is small talk when its units split into a run of whole phrases. When the phrases are of several
intents, the one the reply should answer wins: "hi, who are you" is asked who we are, "thanks, bye" is said
goodbye.

>>> phrases = SmallTalkPhrases({"thanks": ["thanks a lot", "that helped", "谢谢", "thank you"], "bye": ["bye", "拜拜"],
...                             "acknowledge": ["ok", "好的"]})
>>> phrases.intent("Thanks a lot, that helped!"), phrases.intent("ok thanks a lot bye"), phrases.intent("好的谢谢")
('thanks', 'bye', 'thanks')
>>> phrases.intent("byeee"), phrases.intent("thank u"), phrases.intent("thanks a lot for the refund")
('bye', 'thanks', None)
>>> SmallTalkPhrases({"acknowledge": ["👍"]}).intent("👍🏻👍")
'acknowledge'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from retrieval.serving.text import normalise

# a Latin word, a Chinese character, or an emoji ("👍", "🙏": its skin tone and presentation marks aside)
UNIT = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
                  r"|[\u2600-\u27bf\U0001F000-\U0001FAFF]")
EMOJI_MARKS = re.compile(r"[\ufe0e\ufe0f\U0001F3FB-\U0001F3FF]")
REPEATED = re.compile(r"([a-z])\1+")
SHORTHAND = {"u": "you", "r": "are", "ur": "your", "pls": "please", "plz": "please", "thnx": "thanks",
             "thanx": "thanks"}
MAX_CHARS = 80  # longer messages are questions, whatever they start with: not read at all
# Which intent a mixed message is answered with, first first; intents not listed come after, in file order.
PRIORITY = ("identity", "bye", "thanks", "greeting", "acknowledge")


def units(text: str) -> tuple[str, ...]:
    """The units of `text`, each Latin word with its letters typed again and again read once ("byeee",
    "good" as "god": the phrases are read the same way)."""
    return tuple(REPEATED.sub(r"\1", SHORTHAND.get(u, u)) for u in UNIT.findall(EMOJI_MARKS.sub("", normalise(text))))


class SmallTalkPhrases:
    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        self.by_units: dict[tuple[str, ...], str] = {}
        for intent, texts in phrases.items():
            for text in texts:
                self.by_units.setdefault(units(text), intent)
        self.by_units.pop((), None)
        self.longest = max(map(len, self.by_units), default=0)
        order = [*PRIORITY, *(i for i in phrases if i not in PRIORITY)]
        self.rank = {intent: n for n, intent in enumerate(order)}

    def intent(self, text: str) -> str | None:
        """The intent to answer when `text` is nothing but small-talk phrases, else None."""
        found = units(text) if len(text) <= MAX_CHARS else ()
        if not found:
            return None
        # best[i]: the best intent of a split of the first i units into phrases (None: no split)
        best: list[str | None] = [None] * (len(found) + 1)
        reached = [True] + [False] * len(found)
        for end in range(1, len(found) + 1):
            if not any(reached[max(0, end - self.longest):end]):
                return None  # no phrase can end here or later: a question, not small talk
            for start in range(max(0, end - self.longest), end):
                intent = self.by_units.get(found[start:end]) if reached[start] else None
                if intent is None:
                    continue
                candidates = [i for i in (best[start], intent, best[end]) if i is not None]
                best[end] = min(candidates, key=self.rank.__getitem__)
                reached[end] = True
        return best[-1] if reached[-1] else None
