"""Effect: what an action would change, measured on a copy of the knowledge before anything is saved.

`measure` copies the knowledge folder, writes the action's file into the copy, loads it with the strict loader,
builds its index in a temporary folder (the live index's vectors reused for every text that did not change), and
scores the development sets and the frozen test set with the live assistant and with the candidate (aggregates
only: nobody tunes on the test set's questions). It also asks the inbox groups' questions of both, to show which
groups the action would now answer. The candidate's index is kept, so saving the action serves exactly what was
measured without building it again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.build.index import load_or_build
from retrieval.knowledge import DRAFTS_DIR, KnowledgeBase, load_knowledge
from retrieval.learn.files import Action, render, write
from retrieval.learn.inbox import Group, wording
from retrieval.measure.evaluate import DEV_SETS, TEST_SET, CachingEmbedder, load_dev_set, metrics, run
from retrieval.serving.assistant import Assistant
from retrieval.serving.chunks import KeyKind
from retrieval.serving.index import SearchIndex

__all__ = ["BETTER", "Effect", "Evaluator", "GroupChange", "Scores", "SeededEmbedder", "measure", "serving_copy",
           "warm"]

Progress = Callable[[str], None]
# The aggregates compared, and which way is better: +1 higher, -1 lower.
BETTER = {"top1": 1, "top3": 1, "mrr": 1, "oos_declined": 1, "in_scope_declined": -1}
GROUP_QUESTIONS = 10  # wordings asked per group when showing what an action changes


@dataclass(frozen=True)
class Scores:
    """One evaluation: the development sets together, and the frozen test set (None when it is absent)."""

    dev: dict[str, float]
    test: dict[str, float] | None

    def to_json(self) -> dict:
        """Rounded to six places: enough to see one question move, and a full float's 16 digits can pass the
        card-number check of what is stored (mask_secrets), which would break the JSON it is kept in."""
        def rounded(scores: dict[str, float] | None) -> dict[str, float] | None:
            return None if scores is None else {k: round(v, 6) if isinstance(v, float) else v
                                                for k, v in scores.items()}
        return {"dev": rounded(self.dev), "test": rounded(self.test)}


@dataclass(frozen=True)
class GroupChange:
    """How the assistant treats one inbox group's questions, before and after the action."""

    group_id: str
    label: str
    asked: int                 # different wordings asked
    answered_before: int       # of them, answered (Answer.answered)
    answered_after: int
    entry_before: str | None   # the entry most of them were answered with
    entry_after: str | None

    @property
    def changed(self) -> bool:
        return (self.answered_before, self.entry_before) != (self.answered_after, self.entry_after)


@dataclass
class Effect:
    """An action measured: scores before and after, the groups it changes, and the candidate it was measured on."""

    action: Action
    text: str                      # the file the action writes
    before: Scores
    after: Scores
    groups: list[GroupChange]
    in_test_set: list[str]         # the action's questions that are in the frozen test set (they would leak)
    in_dev_sets: list[str]
    kb: KnowledgeBase
    index: SearchIndex | None      # None when the action changes nothing served (a draft)
    base_digest: str = ""          # the live knowledge this was measured against
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def worse(self) -> list[str]:
        """Each aggregate that got worse, as 'dev top1 0.9390 -> 0.9360' (four places: one test question moving
        from second to third place moves MRR by 0.0004, which three places showed as no change)."""
        out = []
        for name, before, after in (("dev", self.before.dev, self.after.dev), ("test", self.before.test,
                                                                                self.after.test)):
            if before is None or after is None:
                continue
            for key, sign in BETTER.items():
                if sign * (after[key] - before[key]) < -1e-12:
                    out.append(f"{name} {key} {before[key]:.4f} -> {after[key]:.4f}")
        return out

    def summary(self) -> dict:
        """What is recorded with the action: aggregates and changed groups, no test question."""
        return {"before": self.before.to_json(), "after": self.after.to_json(), "worse": self.worse(),
                "groups": [g.__dict__ for g in self.groups if g.changed], "in_test_set": len(self.in_test_set),
                "seconds": round(self.seconds, 1)}


class SeededEmbedder:
    """The live embedder, with the live index's vectors remembered by text: an index build for a knowledge base
    that differs by a few phrasings embeds only what is new (and the context-augmented copies)."""

    def __init__(self, inner, index: SearchIndex | None = None):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.queries: dict[str, np.ndarray] = {}
        self.passages: dict[str, np.ndarray] = {}
        if index is not None and index.vectors.size:
            vectors = index.vectors.index.reconstruct_n(0, index.vectors.size)
            for key, vector in zip(index.keys, vectors, strict=True):
                (self.passages if key.kind is KeyKind.ANSWER else self.queries).setdefault(key.text, vector)

    def _embed(self, texts: list[str], cache: dict[str, np.ndarray], embed) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            cache.update(zip(missing, embed(missing), strict=True))
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, self.queries, self.inner.embed_queries)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, self.passages, self.inner.embed_passages)


def serving_copy(assistant: Assistant, kb: KnowledgeBase, index: SearchIndex, embedder=None) -> Assistant:
    """An assistant like `assistant` (same ranking and decisions) over another knowledge base and index."""
    return Assistant(kb, index, embedder or assistant.embedder, assistant.ranker.config, assistant.decision,
                     assistant.max_chars)


class Evaluator:
    """Scores assistants on the development sets and the frozen test set, remembering each question's vector
    (so the second evaluation costs no model time) and each knowledge base's scores (by its digest)."""

    def __init__(self, embedder, dev_paths: Sequence[Path] = DEV_SETS, test_path: Path | None = TEST_SET):
        self.embedder = CachingEmbedder(embedder)
        self.dev = [q for path in dev_paths for q in load_dev_set(Path(path))]
        self.test = load_dev_set(Path(test_path)) if test_path is not None and Path(test_path).exists() else None
        self.known: dict[str, Scores] = {}

    def score(self, assistant: Assistant) -> Scores:
        key = f"{assistant.kb.digest}:{assistant.index.manifest.built_at}"
        if key not in self.known:
            copy = serving_copy(assistant, assistant.kb, assistant.index, self.embedder)
            # Embedded in batches up front (several times faster than one by one as `run` asks); the same vectors
            # serve every later evaluation, so before and after differ only by the knowledge.
            questions = [*self.dev, *(self.test or ())]
            self.embedder.embed_queries(list(dict.fromkeys(
                copy.understand(q.q, provider=q.context).matched for q in questions)))
            test = metrics(run(copy, self.test)) if self.test is not None else None
            self.known[key] = Scores(metrics(run(copy, self.dev)), test)
        return self.known[key]

    def leaks(self, questions: Sequence[str]) -> tuple[list[str], list[str]]:
        """(questions in the test set, questions in the development sets), compared as wordings."""
        test = {wording(q.q) for q in self.test or ()}
        dev = {wording(q.q) for q in self.dev}
        return [q for q in questions if wording(q) in test], [q for q in questions if wording(q) in dev]


def warm(embedder: SeededEmbedder, kb: KnowledgeBase) -> None:
    """Embed now what building `kb`'s index embeds beyond its keys (their context-augmented copies and the
    topic examples), so that measuring an action later embeds only what the action adds."""
    from retrieval.build.models import FitConfig, topic_example_texts, with_context
    from retrieval.serving.chunks import make_keys

    embedder.embed_queries([k.text for k in with_context(kb, make_keys(kb), FitConfig())])
    if kb.topic_examples:
        embedder.embed_queries([text for text, _ in topic_example_texts(kb)])


def _asked(assistant: Assistant, groups: Sequence[Group]) -> dict[str, tuple[int, int, str | None]]:
    out = {}
    for g in groups:
        items = {wording(i.question): i for i in reversed(g.items)}  # each wording once, as last asked
        asked = list(items.values())[:GROUP_QUESTIONS]
        answers = [assistant.ask(i.question, provider=i.provider) for i in asked]
        entries = Counter(a.entry_id for a in answers if a.answered and a.entry_id)
        out[g.id] = (len(asked), sum(a.answered for a in answers), entries.most_common(1)[0][0] if entries else None)
    return out


def group_changes(before: Assistant, after: Assistant, groups: Sequence[Group]) -> list[GroupChange]:
    old, new = _asked(before, groups), _asked(after, groups)
    return [GroupChange(g.id, g.label, old[g.id][0], old[g.id][1], new[g.id][1], old[g.id][2], new[g.id][2])
            for g in groups]


def _copy_knowledge(source: Path, target: Path) -> None:
    # Everything the loader reads, under the same names (so the copy's digest is the one the live folder will
    # have once the action's file is saved there); drafts are never read.
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(DRAFTS_DIR, "__pycache__"))


def measure(action: Action, live: Assistant, knowledge_dir: Path, evaluator: Evaluator,
            groups: Sequence[Group] = (), progress: Progress | None = None,
            embedder: SeededEmbedder | None = None) -> Effect:
    """The action's effect, measured on a copy of `knowledge_dir`; nothing outside a temporary folder is
    written. `embedder` remembers vectors from build to build (default: a new one seeded from the live index).
    Raises KnowledgeError when the copy with the action's file does not load."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    text = render(action, live.kb)
    in_test, in_dev = evaluator.leaks([q for qs in action.questions.values() for q in qs])
    say("scoring the development and test sets as they are now")
    before = evaluator.score(live)
    if action.kind == "new_entry":  # a draft is not read: nothing served changes
        return Effect(action, text, before, before, [], in_test, in_dev, live.kb, None, live.kb.digest,
                      time.monotonic() - started, ["A draft is not served until a person completes it."])
    with tempfile.TemporaryDirectory(prefix="inbox-effect-") as tmp:
        copy = Path(tmp) / "knowledge"
        _copy_knowledge(Path(knowledge_dir), copy)
        write(text, copy, action.path)
        kb = load_knowledge(copy)
        say("building the index with the action applied")
        index = load_or_build(kb, embedder or SeededEmbedder(live.embedder, live.index), Path(tmp) / "index",
                              say)
    candidate = serving_copy(live, kb, index)
    say("scoring the development and test sets with the action applied")
    after = evaluator.score(candidate)
    say("asking the inbox groups' questions again")
    changes = group_changes(serving_copy(live, live.kb, live.index, evaluator.embedder),
                            serving_copy(live, kb, index, evaluator.embedder), groups)
    return Effect(action, text, before, after, changes, in_test, in_dev, kb, index, live.kb.digest,
                  time.monotonic() - started)
