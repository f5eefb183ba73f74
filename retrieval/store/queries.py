"""Queries: what the operator reads about the questions and ratings, as pandas frames, for either database.

Every report is a SQLAlchemy `select` in one function, so a new one (an inbox of declined and 👎 questions,
say) is written next to these, runs on SQLite and PostgreSQL alike, and is tested against both. "Answered"
means what `Answer.answered` means: any kind but those in `UNANSWERED_KINDS`, computed from `kind`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Select, and_, case, exists, func, literal, literal_column, select

from retrieval.serving.answer import UNANSWERED, Kind
from retrieval.store.feedback import FeedbackStore
from retrieval.store.schema import feedback, inbox_actions, inbox_resolved, interactions, reports

__all__ = ["CLOSE_MARGIN", "REASONS", "UNANSWERED_KINDS", "actions", "answered_share", "comments", "csv_bytes",
           "declined_questions", "export_csv", "export_rows", "feedback_by_entry", "feedback_by_provider",
           "inbox_items", "open_reports", "questions_by_kind", "questions_per_day", "top_providers", "top_topics"]

# In the order a report lists them: the kinds that answered, then those that did not.
UNANSWERED_KINDS = tuple(kind.value for kind in Kind if kind in UNANSWERED)
ANSWERED_KINDS = tuple(kind.value for kind in Kind if kind not in UNANSWERED)

i, f = interactions, feedback
# Constants as literals, not parameters: PostgreSQL matches a selected expression to its GROUP BY by its text,
# and two parameters ($1, $3) would not match.
DAY = func.substr(i.c.asked_at, literal_column("1"), literal_column("10"))  # asked_at is UTC ISO 8601 text
ANSWERED = case((i.c.kind.in_([literal(kind, literal_execute=True) for kind in UNANSWERED_KINDS]),
                 literal_column("0")), else_=literal_column("1"))

# Column order and dtypes of every frame, so an empty database gives the same shape as a full one.
PER_DAY = {"day": "str", "questions": "int64"}
SHARE = {"questions": "int64", "answered": "int64"}  # share is computed
BY_KIND = {"kind": "str", "answered": "bool", "questions": "int64"}
RATINGS = {"ratings": "int64", "thumbs_up": "int64", "thumbs_down": "int64"}  # share_positive is computed
DECLINED = {"question": "str", "language": "str", "provider": "str", "times": "int64", "last_asked": "str"}
COMMENTS = {"rated_at": "str", "rating": "int64", "comment": "str", "question": "str", "provider": "str",
            "topic": "str", "entry_id": "str", "kind": "str"}
INBOX = {"interaction_id": "int64", "asked_at": "str", "session_id": "str", "question": "str", "language": "str",
         "provider": "str", "kind": "str", "entry_id": "str", "offered": "str", "margin": "float64",
         "rating": "Int64", "comment": "str", "reason": "str"}
REPORTS = {"report_id": "int64", "reported_at": "str", "entry_id": "str", "text": "str", "question": "str",
           "kind": "str", "interaction_id": "Int64"}
ACTIONS = {"action_id": "int64", "acted_at": "str", "actor": "str", "action": "str", "group_id": "str",
           "entry_id": "str", "questions": "str", "file": "str", "effect": "str"}
EXPORT = {"interaction_id": "int64", "asked_at": "str", "session_id": "str", "question": "str", "language": "str",
          "provider": "str", "kind": "str", "entry_id": "str", "topic": "str", "answered": "bool",
          "score": "float64", "rating": "Int64", "comment": "str", "rated_at": "str"}


def questions_per_day(store: FeedbackStore) -> pd.DataFrame:
    """Columns day (UTC, YYYY-MM-DD), questions; days without questions in between appear with 0."""
    frame = _frame(store, select(DAY.label("day"), func.count().label("questions")).group_by(DAY).order_by(DAY),
                   PER_DAY)
    if frame.empty:
        return frame
    # The page's bar chart puts one bar per row: without its row, a quiet day would vanish from the axis.
    days = pd.date_range(frame["day"].iloc[0], frame["day"].iloc[-1], freq="D").strftime("%Y-%m-%d")
    filled = frame.set_index("day").reindex(days, fill_value=0).rename_axis("day").reset_index()
    return filled.astype(PER_DAY)


def answered_share(store: FeedbackStore, *, per_day: bool = True) -> pd.DataFrame:
    """Columns [day,] questions, answered, share: per UTC day, or one row for everything (per_day=False).

    Days without questions have no row (a share of nothing is undefined); neither has an empty database.
    """
    counts = (func.count().label("questions"), func.coalesce(func.sum(ANSWERED), 0).label("answered"))
    if per_day:
        frame = _frame(store, select(DAY.label("day"), *counts).group_by(DAY).order_by(DAY), {"day": "str", **SHARE})
    else:
        frame = _frame(store, select(*counts), SHARE)
        frame = frame[frame["questions"] > 0].reset_index(drop=True)
    return _with_share(frame, "answered", "questions", "share")


def questions_by_kind(store: FeedbackStore) -> pd.DataFrame:
    """Columns kind, answered, questions: every kind seen, answered kinds first, so the totals add up."""
    frame = _frame(store, select(i.c.kind, ANSWERED.label("answered"), func.count().label("questions"))
                   .group_by(i.c.kind).order_by(ANSWERED.desc(), func.count().desc(), i.c.kind), BY_KIND)
    return frame


def top_topics(store: FeedbackStore, limit: int = 10) -> pd.DataFrame:
    """Columns topic, questions: the most asked topics, most first."""
    return _frame(store, _most(i.c.topic, limit), {"topic": "str", "questions": "int64"})


def top_providers(store: FeedbackStore, limit: int = 10) -> pd.DataFrame:
    """Columns provider, questions: the most asked-about providers, most first."""
    return _frame(store, _most(i.c.provider, limit), {"provider": "str", "questions": "int64"})


def declined_questions(store: FeedbackStore, limit: int = 50) -> pd.DataFrame:
    """Columns question, language, provider, times, last_asked: the knowledge base's to-do list.

    The same question typed again (ignoring case and surrounding spaces) counts once, shown in its latest
    wording; most frequent first, then most recent.
    """
    same = func.lower(func.trim(i.c.question))
    ranked = (select(i.c.question, i.c.language, i.c.provider,
                     func.count().over(partition_by=same).label("times"),
                     func.max(i.c.asked_at).over(partition_by=same).label("last_asked"),
                     func.row_number().over(partition_by=same, order_by=(i.c.asked_at.desc(), i.c.id.desc()))
                     .label("latest"))
              .where(i.c.kind == Kind.DECLINE.value).subquery())
    return _frame(store, select(ranked.c.question, ranked.c.language, ranked.c.provider, ranked.c.times,
                                ranked.c.last_asked).where(ranked.c.latest == 1)
                  .order_by(ranked.c.times.desc(), ranked.c.last_asked.desc()).limit(_positive(limit)), DECLINED)


# -- the operator's inbox ----------------------------------------------------------------------------
# Why a question is in the inbox, in the order one reason wins over another.
REASONS = ("thumbs_down", "declined", "ask_back_unanswered", "close_call")
# An answer whose first entry's probability beat the second's by less than this was a close call.
CLOSE_MARGIN = 0.2


def inbox_items(store: FeedbackStore, close_margin: float = CLOSE_MARGIN, limit: int = 5000) -> pd.DataFrame:
    """What went wrong and nobody has acted on yet, newest first: answers rated 👎 (with their comment),
    declined questions, ask-backs (which provider? did you mean?) after which the user asked nothing more, and
    answers whose first two entries were within `close_margin` of each other. Columns as INBOX; `reason` is one
    of REASONS; `offered` is the JSON [[entry_id, score], ...] the assistant offered, best first."""
    later = interactions.alias("later")
    asked_more = exists(select(later.c.id).where(later.c.session_id == i.c.session_id, later.c.id > i.c.id))
    reason = case(
        (f.c.rating == literal_column("0"), literal("thumbs_down", literal_execute=True)),
        (i.c.kind == literal(Kind.DECLINE.value, literal_execute=True), literal("declined", literal_execute=True)),
        (and_(i.c.kind.in_([literal(Kind.ASK_PROVIDER.value, literal_execute=True),
                            literal(Kind.CLARIFY.value, literal_execute=True)]), ~asked_more),
         literal("ask_back_unanswered", literal_execute=True)),
        (and_(i.c.kind == literal(Kind.ANSWER.value, literal_execute=True), i.c.margin < float(close_margin)),
         literal("close_call", literal_execute=True)),
        else_=None).label("reason")
    rows = (select(i.c.id.label("interaction_id"), i.c.asked_at, i.c.session_id, i.c.question, i.c.language,
                   i.c.provider, i.c.kind, i.c.entry_id, i.c.offered, i.c.margin, f.c.rating, f.c.comment, reason)
            .select_from(i.outerjoin(f, f.c.interaction_id == i.c.id)
                         .outerjoin(inbox_resolved, inbox_resolved.c.interaction_id == i.c.id))
            .where(inbox_resolved.c.interaction_id.is_(None), func.length(func.trim(i.c.question)) > 0)
            .subquery())
    return _frame(store, select(*rows.c).where(rows.c.reason.is_not(None))
                  .order_by(rows.c.asked_at.desc(), rows.c.interaction_id.desc()).limit(_positive(limit)), INBOX)


def open_reports(store: FeedbackStore, limit: int = 500) -> pd.DataFrame:
    """Mistakes users reported that nobody has acted on, newest first, with the question they were about."""
    r = reports
    return _frame(store, select(r.c.id.label("report_id"), r.c.reported_at, r.c.entry_id, r.c.text, i.c.question,
                                i.c.kind, r.c.interaction_id)
                  .select_from(r.outerjoin(i, i.c.id == r.c.interaction_id)).where(r.c.action_id.is_(None))
                  .order_by(r.c.reported_at.desc(), r.c.id.desc()).limit(_positive(limit)), REPORTS)


def actions(store: FeedbackStore, limit: int = 200) -> pd.DataFrame:
    """What operators did, newest first: who, when, which group or entry, which file (JSON columns as text)."""
    a = inbox_actions
    return _frame(store, select(a.c.id.label("action_id"), a.c.acted_at, a.c.actor, a.c.action, a.c.group_id,
                                a.c.entry_id, a.c.questions, a.c.file, a.c.effect)
                  .order_by(a.c.acted_at.desc(), a.c.id.desc()).limit(_positive(limit)), ACTIONS)


def feedback_by_provider(store: FeedbackStore) -> pd.DataFrame:
    """Columns provider, ratings, thumbs_up, thumbs_down, share_positive; most rated first, no provider last."""
    return _ratings_by(store, [i.c.provider], {"provider": "str"})


def feedback_by_entry(store: FeedbackStore) -> pd.DataFrame:
    """Columns entry_id, topic, provider, ratings, thumbs_up, thumbs_down, share_positive."""
    return _ratings_by(store, [i.c.entry_id, i.c.topic, i.c.provider],
                       {"entry_id": "str", "topic": "str", "provider": "str"})


def comments(store: FeedbackStore, limit: int = 100) -> pd.DataFrame:
    """Columns rated_at, rating, comment, question, provider, topic, entry_id, kind: newest first (masked)."""
    return _frame(store, select(f.c.rated_at, f.c.rating, f.c.comment, i.c.question, i.c.provider, i.c.topic,
                                i.c.entry_id, i.c.kind).select_from(f.join(i, i.c.id == f.c.interaction_id))
                  .where(f.c.comment.is_not(None)).order_by(f.c.rated_at.desc(), f.c.interaction_id.desc())
                  .limit(_positive(limit)), COMMENTS)


def export_rows(store: FeedbackStore) -> pd.DataFrame:
    """Every interaction with its feedback (if any), oldest first: the CSV export."""
    return _frame(store, select(i.c.id.label("interaction_id"), i.c.asked_at, i.c.session_id, i.c.question,
                                i.c.language, i.c.provider, i.c.kind, i.c.entry_id, i.c.topic, ANSWERED.label(
                                    "answered"), i.c.score, f.c.rating, f.c.comment, f.c.rated_at)
                  .select_from(i.outerjoin(f, f.c.interaction_id == i.c.id)).order_by(i.c.id), EXPORT)


def export_csv(store: FeedbackStore) -> bytes:
    """export_rows() as spreadsheet-safe CSV bytes."""
    return csv_bytes(export_rows(store))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV for a spreadsheet: UTF-8 with a BOM (Excel then shows Chinese), user text defused as formulas.

    >>> csv_bytes(pd.DataFrame({"question": ["=HYPERLINK(1)", "充值"]})).decode("utf-8-sig").splitlines()
    ['question', "'=HYPERLINK(1)", '充值']
    """
    # What users typed ends up in a spreadsheet: a leading = + - @ would make it a formula there.
    def defuse(value: object) -> object:
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value

    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(defuse)
    return safe.to_csv(index=False).encode("utf-8-sig")


# -- plumbing -----------------------------------------------------------------------------------------
def _most(column, limit: int) -> Select:
    return (select(column, func.count().label("questions")).where(column.is_not(None)).group_by(column)
            .order_by(func.count().desc(), column).limit(_positive(limit)))


def _ratings_by(store: FeedbackStore, keys: list, schema: dict[str, str]) -> pd.DataFrame:
    # Feedback rows only exist for interactions that exist, so the inner join loses nothing.
    ratings = func.count()
    thumbs_up = func.sum(f.c.rating)
    statement = (select(*keys, ratings.label("ratings"), thumbs_up.label("thumbs_up"),
                        (ratings - thumbs_up).label("thumbs_down"))
                 .select_from(f.join(i, i.c.id == f.c.interaction_id)).group_by(*keys)
                 .order_by(ratings.desc(), keys[0].is_(None), *keys))
    return _with_share(_frame(store, statement, {**schema, **RATINGS}), "thumbs_up", "ratings", "share_positive")


def _frame(store: FeedbackStore, statement: Select, schema: dict[str, str]) -> pd.DataFrame:
    rows: Sequence = store.read(statement)
    return pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(schema)).astype(schema)


def _with_share(frame: pd.DataFrame, part: str, whole: str, share: str) -> pd.DataFrame:
    # Every row here has whole >= 1 (groups come from existing rows), so the share is never NaN.
    frame[share] = (frame[part] / frame[whole]).astype("float64") if len(frame) else pd.Series(dtype="float64")
    return frame


def _positive(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive whole number, got {limit!r}")
    return limit
