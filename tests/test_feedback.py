"""Tests for the feedback store: round trips, masking on disk, concurrency, corruption recovery, aggregates."""

from __future__ import annotations

import io
import logging
import re
import sqlite3
import tempfile
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.serving.safety import luhn_ok, mask_secrets
from retrieval.store import feedback
from retrieval.store.feedback import SCHEMA_VERSION, FeedbackError, FeedbackStore, csv_bytes

CARD = "4539 1488 0343 6467"
FIXED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Clock:
    """A settable clock, so rows land on known days."""

    def __init__(self, now: datetime = FIXED):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ask(store: FeedbackStore, question: str = "how do I top up?", **overrides) -> int:
    fields = dict(session_id="s1", question=question, language="en", provider="tello", kind="answer",
                  entry_id="tello.topup_steps", topic="topup_steps", answered=True, score=0.91)
    return store.log_interaction(**{**fields, **overrides})


def raw(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# -- creation ------------------------------------------------------------------------------------
def test_created_on_first_use_with_parent_folders(tmp_path):
    path = tmp_path / "not" / "yet" / "feedback.sqlite3"
    store = FeedbackStore(path)
    assert path.is_file()
    assert store.recovered_from is None
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_keeps_the_data_and_reports_nothing(tmp_path):
    path = tmp_path / "fb.sqlite3"
    first = FeedbackStore(path)
    ask(first)
    first.close()
    second = FeedbackStore(path)
    assert second.recovered_from is None
    assert len(second.export_rows()) == 1
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_an_empty_file_is_taken_as_a_new_database(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.touch()
    store = FeedbackStore(path)
    assert store.recovered_from is None
    assert ask(store) == 1


def test_a_database_from_a_newer_app_is_refused_untouched(tmp_path):
    path = tmp_path / "fb.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(FeedbackError, match=f"schema version {SCHEMA_VERSION + 1}"):
        FeedbackStore(path)
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_a_folder_where_the_file_should_be_is_reported(tmp_path):
    with pytest.raises(FeedbackError, match="ASSISTANT_FEEDBACK_DB"):
        FeedbackStore(tmp_path)


# -- writing -------------------------------------------------------------------------------------
def test_interaction_and_feedback_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3", clock=Clock())
    first = ask(store, "怎么给Tello充值？", language="zh")
    second = ask(store, kind="decline", provider=None, entry_id=None, topic=None, answered=False, score=None)
    assert (first, second) == (1, 2)
    store.log_feedback(interaction_id=first, rating=1, comment="  very clear  ")

    rows = store.export_rows()
    assert rows["interaction_id"].tolist() == [1, 2]
    one = rows.iloc[0]
    assert (one["question"], one["language"], one["provider"], one["kind"], one["entry_id"], one["topic"]) == (
        "怎么给Tello充值？", "zh", "tello", "answer", "tello.topup_steps", "topup_steps")
    assert bool(one["answered"]) is True
    assert one["score"] == pytest.approx(0.91)
    assert (int(one["rating"]), one["comment"]) == (1, "very clear")
    assert one["asked_at"] == one["rated_at"] == "2025-01-02T03:04:05.000+00:00"
    two = rows.iloc[1]
    assert pd.isna(two["provider"]) and pd.isna(two["rating"]) and pd.isna(two["score"])
    assert bool(two["answered"]) is False


def test_a_numpy_score_is_accepted(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    ask(store, score=np.float32(0.5))
    assert store.export_rows().loc[0, "score"] == 0.5


def test_timestamps_are_utc_even_when_the_clock_is_not(tmp_path):
    local = datetime(2025, 1, 2, 16, 0, tzinfo=timezone(timedelta(hours=8)))  # 08:00 UTC, in Beijing
    store = FeedbackStore(tmp_path / "fb.sqlite3", clock=Clock(local))
    ask(store)
    stamp = store.export_rows().loc[0, "asked_at"]
    assert stamp == "2025-01-02T08:00:00.000+00:00"
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


def test_a_second_rating_replaces_the_first(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    interaction = ask(store)
    store.log_feedback(interaction_id=interaction, rating=1, comment="good")
    store.log_feedback(interaction_id=interaction, rating=0)
    assert raw(tmp_path / "fb.sqlite3", "SELECT interaction_id, rating, comment FROM feedback") == [(1, 0, None)]


@pytest.mark.parametrize("rating", [2, -1, "1", 1.0, None, True])
def test_a_rating_other_than_0_or_1_is_refused_by_name(tmp_path, rating):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    interaction = ask(store)
    with pytest.raises(ValueError, match=re.escape(repr(rating))):
        store.log_feedback(interaction_id=interaction, rating=rating)
    assert store.feedback_by_entry().empty


def test_an_unknown_interaction_is_refused_by_id(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    ask(store)
    with pytest.raises(ValueError, match="unknown interaction_id 42"):
        store.log_feedback(interaction_id=42, rating=1)
    assert raw(tmp_path / "fb.sqlite3", "SELECT COUNT(*) FROM feedback") == [(0,)]


@pytest.mark.parametrize("changes, bad", [({"kind": "answered"}, "'answered'"), ({"score": float("nan")}, "nan"),
                                          ({"score": "high"}, "'high'"), ({"score": True}, "True")])
def test_a_bad_interaction_is_refused_by_name(tmp_path, changes, bad):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    with pytest.raises(ValueError, match=re.escape(bad)):
        ask(store, **changes)
    assert store.export_rows().empty


def test_secrets_never_reach_the_disk(tmp_path):
    assert luhn_ok(CARD.replace(" ", ""))  # otherwise masking would rightly leave it alone
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    interaction = ask(store, f"my card {CARD} was charged twice, cvv 123, 验证码 583920")
    store.log_feedback(interaction_id=interaction, rating=0, comment=f"still charged on {CARD.replace(' ', '-')}")
    # Read the bytes while the store is open too: the rows may still sit in the WAL file.
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    store.close()
    on_disk += path.read_bytes()

    assert "•••• •••• •••• ••••".encode() in on_disk  # the row was written, masked
    for group in CARD.split():
        assert group.encode() not in on_disk
    assert b"583920" not in on_disk
    assert b"cvv 123" not in on_disk
    row = FeedbackStore(path).export_rows().iloc[0]
    assert row["question"] == "my card •••• •••• •••• •••• was charged twice, cvv •••, 验证码 ••••••"
    assert row["comment"] == "still charged on ••••-••••-••••-••••"


def test_a_long_comment_is_cut_and_a_blank_one_dropped(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    first, second = ask(store), ask(store)
    store.log_feedback(interaction_id=first, rating=1, comment="长" * 5000)
    store.log_feedback(interaction_id=second, rating=1, comment="   ")
    comments = store.export_rows()["comment"].tolist()
    assert comments[0] == "长" * feedback.MAX_TEXT_CHARS
    assert pd.isna(comments[1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=st.text(max_size=300) | st.from_regex(r"[a-z ]{0,20}\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"))
def test_the_stored_question_is_exactly_the_masked_one(question):
    with tempfile.TemporaryDirectory() as folder:
        store = FeedbackStore(Path(folder) / "fb.sqlite3")
        ask(store, question)
        assert store.export_rows().loc[0, "question"] == mask_secrets(question).text
        store.close()


# -- concurrency ---------------------------------------------------------------------------------
def test_eight_threads_writing_lose_nothing(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(500):
                interaction = ask(store, f"worker {worker} question {n}", session_id=f"w{worker}")
                store.log_feedback(interaction_id=interaction, rating=n % 2)
        except BaseException as e:  # a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert raw(path, "SELECT COUNT(*), COUNT(DISTINCT question) FROM interactions") == [(4000, 4000)]
    assert raw(path, "SELECT COUNT(*), SUM(rating) FROM feedback") == [(4000, 2000)]
    assert store.feedback_by_provider()["ratings"].tolist() == [4000]


def test_a_briefly_locked_database_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.setattr(feedback, "BUSY_TIMEOUT_S", 0.01)  # so our own retry loop does the waiting
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, blocker.execute, args=("COMMIT",))
    release.start()
    assert ask(store) == 1
    release.join()
    assert not blocker.in_transaction  # the lock really was held until the timer let go


def test_a_database_locked_for_too_long_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(feedback, "BUSY_TIMEOUT_S", 0.01)
    monkeypatch.setattr(feedback, "RETRY_FOR_S", 0.2)
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(FeedbackError, match="stayed locked"):
            ask(store)
    finally:
        blocker.execute("ROLLBACK")


# -- corruption ----------------------------------------------------------------------------------
def truncated_database(path: Path) -> bytes:
    store = FeedbackStore(path)
    for n in range(2000):
        ask(store, f"question number {n} " + "x" * 200)
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data[: len(data) // 2]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_file_is_moved_aside_and_replaced(tmp_path, caplog, damage):
    path = tmp_path / "fb.sqlite3"
    if damage == "garbage":
        original = b"this is not a database\x00\xff" * 500
        path.write_bytes(original)
    else:
        original = truncated_database(path)

    with caplog.at_level(logging.WARNING, logger="retrieval.feedback"):
        store = FeedbackStore(path, clock=Clock())

    aside = tmp_path / "fb.sqlite3.corrupt-20250102T030405Z"
    assert store.recovered_from == aside
    assert aside.read_bytes() == original  # kept as it was, for whoever wants to rescue it
    assert str(aside) in caplog.text and "damaged" in caplog.text
    assert raw(path, "PRAGMA quick_check") == [("ok",)]
    assert store.export_rows().empty
    assert ask(store) == 1
    assert len(store.export_rows()) == 1


def test_the_timestamped_name_is_utc_when_the_real_clock_is_used(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.write_bytes(b"garbage" * 100)
    store = FeedbackStore(path)
    assert re.fullmatch(r"fb\.sqlite3\.corrupt-\d{8}T\d{6}Z", store.recovered_from.name)


def test_two_recoveries_in_one_second_keep_both_files(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.write_bytes(b"first garbage" * 100)
    first = FeedbackStore(path, clock=Clock())
    first.close()
    path.write_bytes(b"second garbage" * 100)
    second = FeedbackStore(path, clock=Clock())
    assert first.recovered_from.read_bytes() == b"first garbage" * 100
    assert second.recovered_from.name == "fb.sqlite3.corrupt-20250102T030405Z-1"
    assert second.recovered_from.read_bytes() == b"second garbage" * 100


def test_a_journal_left_beside_a_damaged_file_goes_with_it(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.write_bytes(b"garbage" * 100)
    (tmp_path / "fb.sqlite3-wal").write_bytes(b"old wal")
    store = FeedbackStore(path, clock=Clock())
    assert (tmp_path / "fb.sqlite3.corrupt-20250102T030405Z-wal").read_bytes() == b"old wal"
    assert ask(store) == 1


# -- aggregates ----------------------------------------------------------------------------------
@pytest.fixture
def known(tmp_path) -> FeedbackStore:
    """Eight questions over three UTC days (none on the middle one), four of them rated."""
    clock = Clock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    store = FeedbackStore(tmp_path / "fb.sqlite3", clock=clock)
    i1 = ask(store, "how to top up tello")
    i2 = ask(store, "tello 退款", language="zh", entry_id="tello.refund", topic="refund")
    i3 = ask(store, "Can I buy bitcoin?", provider=None, kind="decline", entry_id=None, topic=None, answered=False,
             score=0.4)
    clock.now = datetime(2025, 3, 3, 23, 59, tzinfo=UTC)
    i4 = ask(store, "lyca top up", provider="lycamobile", entry_id="lycamobile.topup_steps")
    ask(store, "  can I BUY bitcoin? ", provider=None, kind="decline", entry_id=None, topic=None, answered=False)
    ask(store, "怎么买比特币", language="zh", provider=None, kind="decline", entry_id=None, topic=None, answered=False)
    ask(store, "how do I top up", provider=None, kind="ask_provider", entry_id=None)
    ask(store, "", provider=None, kind="empty", entry_id=None, topic=None, answered=False, score=None)
    for interaction, rating in ((i1, 1), (i2, 0), (i3, 0), (i4, 1)):
        store.log_feedback(interaction_id=interaction, rating=rating)
    return store


def records(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def test_questions_per_day_fills_quiet_days_with_zero(known):
    assert records(known.questions_per_day()) == [("2025-03-01", 3), ("2025-03-02", 0), ("2025-03-03", 5)]


def test_answered_share_per_day_and_overall(known):
    assert records(known.answered_share()) == [("2025-03-01", 3, 2, pytest.approx(2 / 3)),
                                               ("2025-03-03", 5, 2, 0.4)]
    assert records(known.answered_share(per_day=False)) == [(8, 4, 0.5)]


def test_top_topics_and_providers(known):
    assert records(known.top_topics()) == [("topup_steps", 3), ("refund", 1)]
    assert records(known.top_topics(1)) == [("topup_steps", 3)]
    assert records(known.top_providers()) == [("tello", 2), ("lycamobile", 1)]


@pytest.mark.parametrize("limit", [0, -3, 2.5, "10"])
def test_a_bad_limit_is_refused_by_name(known, limit):
    with pytest.raises(ValueError, match=re.escape(repr(limit))):
        known.top_topics(limit)


def test_declined_questions_group_repeats_most_frequent_first(known):
    assert records(known.declined_questions()) == [
        ("  can I BUY bitcoin? ", "en", None, 2, "2025-03-03T23:59:00.000+00:00"),
        ("怎么买比特币", "zh", None, 1, "2025-03-03T23:59:00.000+00:00"),
    ]
    assert len(known.declined_questions(1)) == 1


def test_feedback_by_provider_puts_no_provider_last(known):
    assert records(known.feedback_by_provider()) == [("tello", 2, 1, 1, 0.5), ("lycamobile", 1, 1, 0, 1.0),
                                                     (None, 1, 0, 1, 0.0)]


def test_feedback_by_entry(known):
    assert records(known.feedback_by_entry()) == [
        ("lycamobile.topup_steps", "topup_steps", "lycamobile", 1, 1, 0, 1.0),
        ("tello.refund", "refund", "tello", 1, 0, 1, 0.0),
        ("tello.topup_steps", "topup_steps", "tello", 1, 1, 0, 1.0),
        (None, None, None, 1, 0, 1, 0.0),
    ]


def test_export_rows_joins_everything(known):
    rows = known.export_rows()
    assert len(rows) == 8
    assert rows["rating"].tolist()[:4] == [1, 0, 0, 1]
    assert rows["rating"].isna().tolist() == [False] * 4 + [True] * 4
    assert rows["answered"].tolist() == [True, True, False, True, False, False, True, False]
    assert rows["kind"].value_counts().to_dict() == {"answer": 3, "decline": 3, "ask_provider": 1, "empty": 1}


READERS = {
    "questions_per_day": ["day", "questions"],
    "answered_share": ["day", "questions", "answered", "share"],
    "top_topics": ["topic", "questions"],
    "top_providers": ["provider", "questions"],
    "declined_questions": ["question", "language", "provider", "times", "last_asked"],
    "feedback_by_provider": ["provider", "ratings", "thumbs_up", "thumbs_down", "share_positive"],
    "feedback_by_entry": ["entry_id", "topic", "provider", "ratings", "thumbs_up", "thumbs_down", "share_positive"],
    "export_rows": ["interaction_id", "asked_at", "session_id", "question", "language", "provider", "kind",
                    "entry_id", "topic", "answered", "score", "rating", "comment", "rated_at"],
}


@pytest.mark.parametrize("reader", READERS)
def test_an_empty_database_gives_empty_frames_with_the_columns(tmp_path, reader, known):
    empty = getattr(FeedbackStore(tmp_path / "empty" / "fb.sqlite3"), reader)()
    full = getattr(known, reader)()
    assert empty.empty and list(empty.columns) == READERS[reader]
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()  # same shape whether or not there is data


def test_overall_share_of_an_empty_database_is_empty_not_nan(tmp_path):
    frame = FeedbackStore(tmp_path / "fb.sqlite3").answered_share(per_day=False)
    assert frame.empty and list(frame.columns) == ["questions", "answered", "share"]


@pytest.mark.parametrize("reader", ["answered_share", "feedback_by_provider", "feedback_by_entry"])
def test_rates_are_never_nan(known, reader):
    frame = getattr(known, reader)()
    rate = "share" if reader == "answered_share" else "share_positive"
    assert frame[rate].notna().all() and frame[rate].between(0, 1).all()


# -- CSV -----------------------------------------------------------------------------------------
def test_csv_is_excel_friendly_and_defuses_formulas(known):
    ask(known, "=HYPERLINK(\"http://evil\")", kind="decline", answered=False)
    data = known.export_csv()
    assert data.startswith("\ufeff".encode())
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert len(back) == 9
    assert "tello 退款" in back["question"].tolist()
    assert back["question"].iloc[-1] == "'=HYPERLINK(\"http://evil\")"


def test_csv_of_nothing_is_just_the_header():
    assert csv_bytes(pd.DataFrame(columns=["a", "b"])).decode("utf-8-sig").strip() == "a,b"


def test_conversation_round_trip_masks_secrets_and_replaces(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.save_conversation("c1", {"messages": [{"role": "user", "text": "card 4111 1111 1111 1111"}], "step": 2})
    saved = store.load_conversation("c1")
    assert saved["step"] == 2 and "4111" not in saved["messages"][0]["text"]
    store.save_conversation("c1", {"step": 3})
    assert store.load_conversation("c1") == {"step": 3}
    assert store.load_conversation("unknown") is None
    with pytest.raises(ValueError):
        store.save_conversation("", {})


def test_clear_feedback_undoes_a_rating(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    i = store.log_interaction(session_id="s", question="q", language="en", provider=None, kind="answer",
                              entry_id=None, topic=None, answered=True, score=None)
    store.log_feedback(interaction_id=i, rating=0, comment="wrong")
    store.clear_feedback(interaction_id=i)
    assert store.export_rows()["rating"].isna().all()
