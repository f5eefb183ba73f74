"""Walkthrough: an entry's steps one at a time, ending with a check of the result.

>>> w = Walkthrough("gv-topup-steps", "zh")
>>> w.next().next().back().step
1
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from retrieval.knowledge import KnowledgeBase
from retrieval.serving.answer import Answer, Choice, Kind, render_chunk
from retrieval.serving.chunks import entry_chunk

# A step is about paying when it says so: only then does "this step didn't work" offer the payment-failure help.
PAYMENT_WORDS = re.compile(r"付款|支付|付费|刷卡|信用卡|银行卡|借记卡"
                           r"|\bpay|\bcard\b|\bbuy\b|purchase|checkout", re.IGNORECASE)
# Topics that help any procedure through: asking about them mid-walkthrough is a side question, not a new task.
SIDE_TOPICS = frozenset({"payment_failed", "payment_methods", "amount", "currency", "arrival_time", "confirm",
                         "account", "safety"})
# What a user may need to copy out of a step: dial codes, web addresses, refill codes.
COPYABLE = re.compile(
    r"[*#][0-9A-Z*#]*[0-9][0-9A-Z*#]*#?"                                            # *888*PIN#, #225#
    r"|(?:https?://)?(?:[A-Za-z0-9-]+\.)+(?:com|net|org|us|io|gov)(?:/[^\s，。；、)）\"'“”]*)?"  # voice.google.com/u/0
    r"|\b(?=[A-Z0-9]*[0-9])[A-Z][A-Z0-9]{4,}\b")                                 # refill codes: ADD10PAYG


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

    def to_json(self) -> dict:
        return {"entry_id": self.entry_id, "language": self.language, "step": self.step, "failed": self.failed}

    @classmethod
    def from_json(cls, kb: KnowledgeBase, data: object) -> Walkthrough | None:
        """A saved walkthrough, or None when it no longer fits the knowledge base (entry gone, steps changed)."""
        if not isinstance(data, dict):
            return None
        entry_id, language, step = data.get("entry_id"), data.get("language"), data.get("step")
        if not (isinstance(entry_id, str) and can_walk(kb, entry_id) and isinstance(step, int)
                and not isinstance(step, bool) and language in kb.by_id[entry_id].steps):
            return None
        total = len(kb.by_id[entry_id].steps[language]) + 1
        return cls(entry_id, language, min(max(step, 0), total), bool(data.get("failed")))


@dataclass(frozen=True)
class StepView:
    """What the page shows for the current step."""

    title: str
    progress: str               # "第 2 步，共 6 步"; empty once finished
    number: int                 # 1-based
    total: int                  # the entry's steps plus the final check
    text: str
    expect: str = ""
    troubleshooting: str = ""   # shown after "this step didn't work": this step's own advice
    payment_help: str = ""      # the provider's payment-failure help (Markdown), only for a step that pays
    is_last: bool = False
    finished: bool = False      # past the last step
    can_fail: bool = False      # the step has its own advice for when it does not work
    copyable: tuple[str, ...] = ()   # codes and addresses in the step, to copy with one tap
    follow_up: Choice | None = None  # once finished: "paid but the balance didn't change?"


def can_walk(kb: KnowledgeBase, entry_id: str) -> bool:
    entry = kb.by_id.get(entry_id)
    return bool(entry and entry.steps)


def payment_help(kb: KnowledgeBase, provider: str, language: str) -> str:
    """The provider's own payment-failure entry, or the general one."""
    entries = kb.entries_for(provider, "payment_failed") or kb.entries_for("general", "payment_failed")
    if not entries:
        return ""
    return render_chunk(kb, entry_chunk(entries[0], language), language)


def is_payment_step(text: str) -> bool:
    """
    >>> is_payment_step("点右上角的齿轮图标 Settings（设置）。"), is_payment_step("选择付款方式，点 Buy。")
    (False, True)
    """
    return bool(PAYMENT_WORDS.search(text))


def copyable(text: str) -> tuple[str, ...]:
    """Codes and web addresses in a step, in order, each once.

    >>> copyable("拨 *888*PIN# 或打开 voice.google.com/u/0/settings 登录。")
    ('*888*PIN#', 'voice.google.com/u/0/settings')
    >>> copyable("点右上角的齿轮图标 Settings。")
    ()
    """
    found = [m.group().rstrip(".,;:!?") for m in COPYABLE.finditer(text)]
    return tuple(dict.fromkeys(f for f in found if len(f) >= 3))


def follow_up(kb: KnowledgeBase, provider: str, language: str) -> Choice | None:
    """After the last step: the provider's "paid but the balance did not change" entry, to open with a tap."""
    entries = kb.entries_for(provider, "arrival_time") or kb.entries_for("general", "arrival_time")
    if not entries:
        return None
    entry = entries[0]
    return Choice(entry.title[language], entry.questions[language][0], entry_id=entry.id)


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
        return StepView(title, "", total, total, kb.message("walk_finished", lang), finished=True,
                        follow_up=follow_up(kb, entry.provider, lang))
    if walk.step == len(steps):
        return StepView(title, progress, number, total, kb.message("final_check", lang), is_last=True)
    step = steps[walk.step]
    troubleshooting = ""
    help_md = ""
    if walk.failed:
        troubleshooting = kb.message("step_if_not", lang, text=step.if_not) if step.if_not else ""
        if is_payment_step(f"{step.do} {step.if_not}"):
            help_md = payment_help(kb, entry.provider, lang)
    expect = kb.message("step_expect", lang, text=step.expect) if step.expect else ""
    return StepView(title, progress, number, total, step.do, expect, troubleshooting, help_md,
                    can_fail=bool(step.if_not) or is_payment_step(step.do), copyable=copyable(step.do))


def stays_open(kb: KnowledgeBase, walk: Walkthrough, answer: Answer) -> bool:
    """Whether the walkthrough stays open under a new answer: yes for a side question about the same task
    (same provider, and the walkthrough's own topic or one that helps any procedure through: a declined
    card, the amount, the sign-in...), and for small talk and declines, which change nothing; no once the
    user asks which provider again, or moves to another provider or another task."""
    if answer.kind is Kind.ASK_PROVIDER:
        return False
    if answer.kind in (Kind.SMALL_TALK, Kind.DECLINE, Kind.EMPTY, Kind.NOT_UNDERSTOOD):
        return True
    entry = kb.by_id[walk.entry_id]
    if entry.provider == "general":  # general steps: until a provider's own steps for the same task replace them
        return not (answer.provider and answer.topic == entry.topic) and \
            (answer.topic in (entry.topic, None) or answer.topic in SIDE_TOPICS)
    return answer.provider == entry.provider and (answer.topic in (entry.topic, None) or answer.topic in SIDE_TOPICS)
