"""Walkthrough: an entry's steps one at a time, ending with a check of the result.

>>> w = Walkthrough("gv-topup-steps", "zh")
>>> w.next().next().back().step
1
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.answer import render_chunk
from retrieval.serving.chunks import entry_chunk


@dataclass(frozen=True)
class Walkthrough:
    """Where the user is: which entry, in which language, which step (0-based), and whether it failed."""

    entry_id: str
    language: str
    step: int = 0
    failed: bool = False

    def next(self) -> Walkthrough:
        return replace(self, step=self.step + 1, failed=False)

    def back(self) -> Walkthrough:
        return replace(self, step=max(0, self.step - 1), failed=False)

    def fail(self) -> Walkthrough:
        return replace(self, failed=True)


@dataclass(frozen=True)
class StepView:
    """What the page shows for the current step."""

    title: str
    progress: str
    number: int           # 1-based
    total: int            # the entry's steps plus the final check
    text: str
    expect: str = ""
    troubleshooting: str = ""   # shown after "this step didn't work"
    payment_help: str = ""      # the provider's payment-failure help, Markdown
    is_last: bool = False
    finished: bool = False      # past the last step


def can_walk(kb: KnowledgeBase, entry_id: str) -> bool:
    entry = kb.by_id.get(entry_id)
    return bool(entry and entry.steps)


def payment_help(kb: KnowledgeBase, provider: str, language: str) -> str:
    """The provider's own payment-failure entry, or the general one."""
    entries = kb.entries_for(provider, "payment_failed") or kb.entries_for("general", "payment_failed")
    if not entries:
        return ""
    return render_chunk(kb, entry_chunk(entries[0], language), language)


def view(kb: KnowledgeBase, walk: Walkthrough) -> StepView:
    """The current step, with the final check after the entry's own steps."""
    entry = kb.by_id[walk.entry_id]
    lang = walk.language
    steps = entry.steps[lang]
    total = len(steps) + 1
    number = min(walk.step, total) + 1
    progress = kb.message("step_progress", lang, n=min(number, total), total=total)
    title = entry.title[lang]
    if walk.step >= total:
        return StepView(title, progress, total, total, kb.message("walk_finished", lang), finished=True)
    if walk.step == len(steps):
        return StepView(title, progress, number, total, kb.message("final_check", lang), is_last=True)
    step = steps[walk.step]
    troubleshooting = ""
    help_md = ""
    if walk.failed:
        troubleshooting = kb.message("step_if_not", lang, text=step.if_not) if step.if_not else ""
        help_md = payment_help(kb, entry.provider, lang)
    expect = kb.message("step_expect", lang, text=step.expect) if step.expect else ""
    return StepView(title, progress, number, total, step.do, expect, troubleshooting, help_md)
