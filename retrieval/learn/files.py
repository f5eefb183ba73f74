"""Files: an operator's action on an inbox group, written as a knowledge file and checked by the strict loader.

`attach` and `out_of_scope` become knowledge/learned/<when>-<action>-<group>.yaml, which the loader reads
with the rest (questions only: more phrasings of an entry, or questions to decline). `new_entry` becomes a
skeleton in knowledge/drafts/, which is never read: a person writes and sources the answer, then moves the
entry into a provider's file. Every file is also offered as a patch, for review in git.

>>> a = Action("out_of_scope", "g-1a2b3c", {"zh": ("比特币怎么买",), "en": ()}, "ann", dt.datetime(2026, 12, 1, 9, 30))
>>> a.path
'learned/20261201-093000-out-of-scope-g-1a2b3c.yaml'
>>> print(render(a).split("\\n", 2)[2])
action: out_of_scope
by: ann
at: '2026-12-01T09:30:00Z'
group: g-1a2b3c
questions:
  zh:
  - 比特币怎么买
  en: []
<BLANKLINE>
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from retrieval.knowledge import DRAFTS_DIR, LANGUAGES, LEARNED_DIR, Entry, KnowledgeBase, load_knowledge
from retrieval.serving.safety import mask_secrets

__all__ = ["KINDS", "Action", "draft", "patch", "render", "save", "write"]

KINDS = ("attach", "out_of_scope", "new_entry")
TODO = "TODO"


@dataclass(frozen=True)
class Action:
    """What the operator decided for one group: its questions (per language), who and when."""

    kind: str
    group_id: str
    questions: dict[str, tuple[str, ...]]
    actor: str
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    entry_id: str | None = None   # attach: the entry the questions are phrasings of

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"action must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "attach" and not self.entry_id:
            raise ValueError("attach needs the id of the entry the questions become phrasings of")
        if self.kind == "out_of_scope":
            object.__setattr__(self, "entry_id", None)  # questions to decline belong to no entry
        if not self.actor or not self.actor.strip():
            raise ValueError("say who acts (a name): every action is recorded with who and when")
        # What the store holds is masked already; masked again, so nothing that slipped through is written out.
        masked = {}
        for lang in LANGUAGES:
            kept: dict[str, str] = {}  # the same question in other capitals is filed once
            for question in self.questions.get(lang, ()):
                if text := " ".join(mask_secrets(question).text.split()):
                    kept.setdefault(text.casefold(), text)
            masked[lang] = tuple(kept.values())
        if not any(masked.values()):
            raise ValueError(f"group {self.group_id} has no question to file")
        object.__setattr__(self, "questions", masked)
        object.__setattr__(self, "actor", " ".join(self.actor.split()))
        if self.at.tzinfo is None:  # a naive time is taken as UTC, never as the server's local time
            object.__setattr__(self, "at", self.at.replace(tzinfo=dt.UTC))

    @property
    def stamp(self) -> str:
        return self.at.astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")

    @property
    def path(self) -> str:
        """Where the file goes, relative to the knowledge folder."""
        folder = DRAFTS_DIR if self.kind == "new_entry" else LEARNED_DIR
        what = self.kind.replace("_", "-") + (f"-{self.entry_id}" if self.kind == "attach" else "")
        return f"{folder}/{self.stamp}-{what}-{self.group_id}.yaml"

    @property
    def count(self) -> int:
        return sum(len(qs) for qs in self.questions.values())


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1000, default_flow_style=False)


def render(action: Action, kb: KnowledgeBase | None = None) -> str:
    """The file's text: a learned file, or for `new_entry` a draft (see `draft`)."""
    if action.kind == "new_entry":
        return draft(action, kb)
    when = action.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = (f"more phrasings of entry {action.entry_id}" if action.kind == "attach"
            else "questions the assistant declines (they teach the decline decision)")
    header = (f"# Learned from the operator's inbox, group {action.group_id}: {what}.\n"
              f"# Real users' questions (secrets masked). Review in git; delete this file to undo.\n")
    doc = {"action": action.kind, "by": action.actor, "at": when, "group": action.group_id}
    if action.kind == "attach":
        doc["entry"] = action.entry_id
    doc["questions"] = {lang: list(action.questions[lang]) for lang in LANGUAGES}
    return header + _dump(doc)


def draft(action: Action, kb: KnowledgeBase | None = None, near: Entry | None = None) -> str:
    """A new entry's skeleton with the group's questions as its phrasings: everything a person must write and
    source is TODO. Never loaded (knowledge/drafts/ is not read), so nothing unsourced can be served."""
    near = near or (kb.by_id.get(action.entry_id) if kb and action.entry_id else None)
    when = action.at.astimezone(dt.UTC).date().isoformat()
    hint = f" The assistant's nearest entry was {near.id} ({near.provider}, {near.topic})." if near else ""
    header = (f"# DRAFT, not served: knowledge/drafts/ is never read. Asked for by {action.actor} on {when} for\n"
              f"# the inbox group {action.group_id}, whose questions no entry answers.{hint}\n"
              "# Write the answer from official pages (docs/knowledge.md), replace every TODO, move the entry into\n"
              "# knowledge/<provider>.yaml, delete this file, and run `python -m retrieval check`.\n")
    entry = {
        "id": TODO, "topic": near.topic if near else TODO, "checked": TODO,
        "title": {"zh": TODO, "en": TODO},
        "questions": {lang: list(action.questions[lang]) or [TODO] for lang in LANGUAGES},
        "answer": {"zh": TODO, "en": TODO},
        "links": [{"title": TODO, "url": TODO}],
        "sources": [f"{TODO} (<url> (<kind>, <date>))"],
    }
    return header + _dump({"provider": near.provider if near else TODO, "entries": [entry]})


def patch(action: Action, text: str) -> str:
    """`text` as a git patch adding knowledge/<action.path>: `git apply` it in a clone to review."""
    path = f"knowledge/{action.path}"
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n{body}")


def write(text: str, knowledge_dir: Path, relative: str) -> Path:
    """Write `text` to knowledge_dir/relative at once (a temporary file renamed); never over an existing file."""
    target = Path(knowledge_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(f"{target} exists already; an action never overwrites a file")
    fd, tmp = tempfile.mkstemp(prefix=".writing-", suffix=".yaml.tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, target)  # unlike a rename, fails if the target appeared meanwhile
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return target


def save(action: Action, knowledge_dir: Path, kb: KnowledgeBase | None = None) -> tuple[Path, KnowledgeBase]:
    """Write the action's file and load the knowledge again with the strict loader; on any error the file is
    removed and the KnowledgeError raised, so the folder is left as it was. Returns (file, knowledge)."""
    if kb is None and action.kind == "new_entry":  # the draft names the nearest entry's provider and topic
        kb = load_knowledge(knowledge_dir)
    path = write(render(action, kb), knowledge_dir, action.path)
    try:
        return path, load_knowledge(knowledge_dir)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
