"""Views: the inbox as tables and labels for the operator's page (pandas, no Streamlit)."""

from __future__ import annotations

import pandas as pd

from retrieval.knowledge import KnowledgeBase
from retrieval.learn.effect import Effect
from retrieval.learn.inbox import Group

REASON_LABELS = {"thumbs_down": "👎", "declined": "declined / 拒答",
                 "ask_back_unanswered": "ask-back left / 追问无下文", "close_call": "close call / 难分高下"}
ACTION_LABELS = {"attach": "Attach to an entry / 归入条目", "out_of_scope": "Out of scope / 不属于本助手",
                 "new_entry": "New entry needed / 需要新条目"}
SCORE_NAMES = {"top1": "top-1", "top3": "top-3", "mrr": "MRR", "oos_declined": "out-of-scope declined / 范围外拒答",
               "in_scope_declined": "in-scope declined / 范围内误拒"}


def when(text: str) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM'."""
    return text[:16].replace("T", " ") if isinstance(text, str) else "—"


def entry_label(kb: KnowledgeBase, entry_id: str | None) -> str:
    entry = kb.by_id.get(entry_id) if entry_id else None
    return f"{entry.title['zh']} / {entry.title['en']} ({entry_id})" if entry else (entry_id or "—")


def group_rows(groups: list[Group]) -> pd.DataFrame:
    return pd.DataFrame([{"#": n, "group / 问题组": g.summary(), "why / 原因": ", ".join(
        f"{REASON_LABELS.get(r, r)} {c}" for r, c in g.reasons.items()), "first seen / 首次": when(g.first_seen),
        "last seen / 最近": when(g.last_seen), "answered with / 回答所用": ", ".join(
            f"{e} ×{c}" for e, c in g.chosen()) or "—"} for n, g in enumerate(groups, 1)])


def entry_choices(group: Group, kb: KnowledgeBase) -> list[str]:
    """Every entry, the assistant's own suggestions for the group first, then by provider and title."""
    suggested = [e for e in group.suggested() if e in kb.by_id]
    rest = sorted((e for e in kb.by_id if e not in suggested), key=lambda e: (kb.by_id[e].provider, e))
    return suggested + rest


def effect_table(effect: Effect) -> pd.DataFrame:
    rows = []
    for name, before, after in (("development / 开发集", effect.before.dev, effect.after.dev),
                                ("test (frozen) / 测试集（冻结）", effect.before.test, effect.after.test)):
        for moment, scores in (("before / 之前", before), ("after / 之后", after)):
            if scores:
                rows.append({"set / 数据集": name, "when / 时间": moment,
                             **{label: round(scores[key], 3) for key, label in SCORE_NAMES.items()}})
    return pd.DataFrame(rows)
