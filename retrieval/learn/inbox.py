"""Inbox: what went wrong (declined, 👎, ask-backs left hanging, close calls), grouped by meaning.

Questions are grouped by the assistant's own reading of them: provider names out, the vocabulary made
canonical (`Understood.matched`), embedded with its embedder. Groups are complete-linkage clusters: every two
different wordings in a group are at least MIN_SIMILARITY alike, so one action fits them all. On 600
development questions, 0.92 gave 334 groups of which 94% of the questions shared their group's majority topic
(0.90: 238 groups, 88%). Deterministic: the same inbox always gives the same groups, with the same ids.

>>> item = Item(1, "2026-01-01T00:00:00", "s", "GV怎么交话费", "zh", None, "decline", None, (), "declined")
>>> Group.of([item]).id, Group.of([item]).label
('g-7c4fb9', 'GV怎么交话费')
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.knowledge import LANGUAGES

MIN_SIMILARITY = 0.92
# The most recent questions grouped (the clustering holds a square matrix of them: 2,000 take 32 MB).
MAX_ITEMS = 2000


def wording(question: str) -> str:
    """The key under which the same question typed again counts once: case and surrounding spaces ignored."""
    return " ".join(question.split()).casefold()


@dataclass(frozen=True)
class Item:
    """One question in the inbox (a row of `queries.inbox_items`)."""

    interaction_id: int
    asked_at: str
    session_id: str
    question: str          # as stored: secrets masked
    language: str
    provider: str | None
    kind: str
    entry_id: str | None   # the entry it was answered with, if any
    offered: tuple[tuple[str, float], ...]  # what the assistant offered, best first
    reason: str            # one of queries.REASONS
    rating: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Group:
    """Questions that mean the same thing, newest first; `id` comes from its label, so it stays put."""

    id: str
    label: str                 # the wording asked most (then the latest)
    items: tuple[Item, ...]

    @classmethod
    def of(cls, items: Sequence[Item]) -> Group:
        items = tuple(sorted(items, key=lambda i: (i.asked_at, i.interaction_id), reverse=True))
        counts = Counter(wording(i.question) for i in items)
        latest = {}
        for i in items:
            latest.setdefault(wording(i.question), i)
        key = min(counts, key=lambda w: (-counts[w], items.index(latest[w])))
        return cls("g-" + hashlib.sha256(key.encode()).hexdigest()[:6], latest[key].question, items)

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def users(self) -> int:
        return len({i.session_id for i in self.items})

    @property
    def first_seen(self) -> str:
        return self.items[-1].asked_at

    @property
    def last_seen(self) -> str:
        return self.items[0].asked_at

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(i.reason for i in self.items).most_common())

    def wordings(self) -> list[tuple[str, int]]:
        """Each different wording (its latest spelling) with how often it was asked, most first."""
        counts = Counter(wording(i.question) for i in self.items)
        shown = {}
        for i in self.items:
            shown.setdefault(wording(i.question), i.question)
        return [(shown[w], n) for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def questions(self) -> dict[str, tuple[str, ...]]:
        """The different wordings per language, most asked first: what an action files."""
        out: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        seen: set[str] = set()
        by_wording = {wording(i.question): i for i in self.items}
        for text, _ in self.wordings():
            item = by_wording[wording(text)]
            if wording(text) not in seen:
                seen.add(wording(text))
                out[item.language if item.language in out else LANGUAGES[0]].append(text)
        return {lang: tuple(texts) for lang, texts in out.items()}

    def chosen(self) -> list[tuple[str, int]]:
        """The entries the assistant answered these questions with, most often first."""
        return Counter(i.entry_id for i in self.items if i.entry_id).most_common()

    def suggested(self) -> list[str]:
        """The entries the assistant offered for these questions, by their summed probability: the likeliest
        home for the group, as the assistant saw it."""
        weight: Counter = Counter()
        for item in self.items:
            for entry_id, score in item.offered:
                weight[entry_id] += score
        return [entry_id for entry_id, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))]

    def comments(self) -> list[str]:
        return [i.comment for i in self.items if i.comment]

    def summary(self) -> str:
        """"交话费 (23 questions, 14 users)"."""
        questions = f"{self.size} question" + "s" * (self.size != 1)
        return f"{self.label} ({questions}, {self.users} user{'s' * (self.users != 1)})"


def items_from_rows(rows) -> list[Item]:
    """`queries.inbox_items` (a DataFrame) as Items."""
    import pandas as pd

    def text(value) -> str | None:
        return value if isinstance(value, str) else None

    out = []
    for row in rows.itertuples(index=False):
        offered = tuple((str(e), float(s)) for e, s in json.loads(row.offered)) if text(row.offered) else ()
        rating = None if pd.isna(row.rating) else int(row.rating)
        out.append(Item(int(row.interaction_id), row.asked_at, row.session_id, row.question, row.language,
                        text(row.provider), row.kind, text(row.entry_id), offered, row.reason, rating,
                        text(row.comment)))
    return out


def cluster(vectors: np.ndarray, min_similarity: float = MIN_SIMILARITY) -> list[int]:
    """Complete-linkage clusters of L2-normalised rows: a label per row, numbered by first appearance."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="complete",
                                     distance_threshold=1.0 - min_similarity).fit_predict(vectors)
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(label), len(renumber)) for label in labels]


def group(items: Sequence[Item], read: Callable[[str], str], embed: Callable[[list[str]], np.ndarray],
          min_similarity: float = MIN_SIMILARITY) -> list[Group]:
    """Items grouped by meaning, biggest group first (then the most recent). `read` turns a question into the
    text the assistant matches; `embed` embeds such texts (the assistant's own embedder)."""
    by_wording: dict[str, list[Item]] = {}
    for item in items:
        by_wording.setdefault(wording(item.question), []).append(item)
    keys = sorted(by_wording)  # the order the clustering sees does not depend on the order rows came in
    texts = [read(by_wording[k][0].question) or k for k in keys]
    vectors = np.asarray(embed(texts), dtype=np.float32) if keys else np.zeros((0, 1), dtype=np.float32)
    members: dict[int, list[Item]] = {}
    for key, label in zip(keys, cluster(vectors, min_similarity), strict=True):
        members.setdefault(label, []).extend(by_wording[key])
    groups = sorted((Group.of(found) for found in members.values()), key=lambda g: (g.last_seen, g.id), reverse=True)
    return sorted(groups, key=lambda g: (-g.size, -g.users))  # stable: the most recent first among equals


def gather(store, read: Callable[[str], str], embed: Callable[[list[str]], np.ndarray],
           min_similarity: float = MIN_SIMILARITY, limit: int = MAX_ITEMS) -> list[Group]:
    """The inbox of `store`, grouped: `read` is how the assistant reads a question (`Assistant.understand(q).matched`
    or `reader(kb)`), `embed` its embedder's `embed_queries`."""
    from retrieval.store import queries

    return group(items_from_rows(queries.inbox_items(store, limit=limit)), read, embed, min_similarity)


def reader(kb, max_chars: int = 500) -> Callable[[str], str]:
    """How an assistant over `kb` reads a question (what it matches), without its index: for the command line."""
    from retrieval.serving.ranking import Vocabulary
    from retrieval.serving.understand import Reader

    read = Reader(kb, Vocabulary(kb).counts, max_chars).read
    return lambda question: read(question).matched


def find(groups: Sequence[Group], group_id: str) -> Group:
    """The group with id `group_id` (or its 1-based number in `groups`); ValueError naming what exists."""
    for n, g in enumerate(groups, 1):
        if g.id == group_id or group_id == str(n):
            return g
    shown = ", ".join(g.id for g in groups[:10]) or "none: the inbox is empty"
    raise ValueError(f"no inbox group {group_id!r} (groups now: {shown}); list them again with `retrieval inbox`")
