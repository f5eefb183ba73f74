"""Tests for the store, each on SQLite and on a real PostgreSQL server: round trips, masking, concurrency from
threads and processes, schema and migrations, the reports of queries.py. SQLite's file (corruption, WAL,
permissions) is tested on SQLite alone; the store's behaviour when its database goes away is in test_faults.py.
"""

from __future__ import annotations

import io
import logging
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, text
from store_writer import start_writers

from retrieval.serving.answer import Kind
from retrieval.serving.safety import luhn_ok, mask_secrets
from retrieval.settings import ROOT, Settings
from retrieval.store import feedback, open_store, queries
from retrieval.store.database import StoreUnavailable, locate
from retrieval.store.feedback import SCHEMA_VERSION, FeedbackStore, storable
from retrieval.store.schema import metadata, migration

pytest_plugins = ["conftest_postgres"]  # postgres, postgres_url, own_postgres

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


def raw(where: Path | str, sql: str) -> list[tuple]:
    """Rows of `sql`, read past the store, on whichever database `where` names."""
    engine = create_engine(locate(where).url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path) -> Path | str:
    """Where a test's store lives: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "fb.sqlite3"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make(where):
    """Open stores at `where` (closed after the test): make(clock=...)."""
    stores: list[FeedbackStore] = []

    def make(**options) -> FeedbackStore:
        store = FeedbackStore(where, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


# -- creation ------------------------------------------------------------------------------------
def test_created_on_first_use_with_parent_folders_owner_only(tmp_path):
    path = tmp_path / "not" / "yet" / "feedback.sqlite3"
    store = FeedbackStore(path)
    ask(store)
    assert path.is_file()
    assert store.recovered_from is None and store.problem is None
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    # What users typed is in these files: nobody but the owner may read them.
    for name in ("feedback.sqlite3", "feedback.sqlite3-wal", "feedback.sqlite3-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    store.close()


def test_a_world_readable_database_is_made_owner_only(tmp_path):
    path = tmp_path / "fb.sqlite3"
    FeedbackStore(path).close()
    path.chmod(0o644)
    FeedbackStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_migrated_schema_is_the_one_the_code_uses(make, where):
    make()
    engine = create_engine(locate(where).url)
    try:
        found = inspect(engine)
        for table in metadata.sorted_tables:
            # (SQLite reports primary keys as nullable, so they are compared by name only.)
            keys = {c.name for c in table.primary_key}
            columns = {c["name"]: c["nullable"] or c["name"] in keys for c in found.get_columns(table.name)}
            assert columns == {c.name: c.nullable or c.name in keys for c in table.columns}, table.name
            assert found.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
        assert any(index["unique"] and index["column_names"] == ["write_key"]
                   for index in found.get_indexes("interactions"))
    finally:
        engine.dispose()


def test_reopening_keeps_the_data_and_reports_nothing(make, where, tmp_path):
    first = make()
    ask(first)
    first.close()
    second = make()
    assert second.recovered_from is None and second.problem is None
    assert len(queries.export_rows(second)) == 1
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_database_of_the_previous_version_is_migrated_keeping_its_rows(tmp_path):
    path = tmp_path / "fb.sqlite3"
    with sqlite3.connect(path) as conn:  # version 2, as the previous release left it
        for step in range(2):
            for statement in migration(step, "sqlite"):
                conn.execute(statement)
        conn.execute("INSERT INTO interactions (asked_at, session_id, question, language, kind, answered)"
                     " VALUES ('2025-01-01T00:00:00.000+00:00', 's', 'old question', 'en', 'answer', 1)")
        conn.execute("PRAGMA user_version = 2")
    store = FeedbackStore(path)
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert queries.export_rows(store)["question"].tolist() == ["old question"]
    assert ask(store) == 2
    store.close()


def test_an_empty_file_is_taken_as_a_new_database(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.touch()
    store = FeedbackStore(path)
    assert store.recovered_from is None
    assert ask(store) == 1
    store.close()


def test_a_database_from_a_newer_app_is_left_untouched_and_said_so(make, where):
    newer = SCHEMA_VERSION + 1
    if isinstance(where, Path):
        with sqlite3.connect(where) as conn:
            conn.execute(f"PRAGMA user_version = {newer}")
    else:
        engine = create_engine(locate(where).url)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE schema_version (version INTEGER NOT NULL); "
                              f"INSERT INTO schema_version VALUES ({newer})"))
        engine.dispose()
    store = make()  # the page still starts
    assert f"schema version {newer}" in store.problem
    assert ask(store) < 0  # waits in memory: never written into a schema we do not know
    version = "PRAGMA user_version" if isinstance(where, Path) else "SELECT version FROM schema_version"
    assert raw(where, version) == [(newer,)]


def test_a_folder_where_the_file_should_be_is_reported(tmp_path):
    store = FeedbackStore(tmp_path)
    assert "ASSISTANT_FEEDBACK_DB" in store.problem and str(tmp_path) in store.problem
    store.close()


def test_one_store_per_database_for_the_whole_process(tmp_path, postgres_url):
    sqlite_settings = Settings(feedback_db=tmp_path / "fb.sqlite3")
    assert open_store(sqlite_settings) is open_store(Settings(feedback_db=tmp_path / "." / "fb.sqlite3"))
    on_server = Settings(feedback_db=tmp_path / "fb.sqlite3", database_url=postgres_url)
    store = open_store(on_server)
    assert store is open_store(on_server) and store is not open_store(sqlite_settings)
    assert store.db.dialect == "postgresql" and ask(store) == 1
    assert "@" in store.where and ":***@" in store.where  # the password is never shown
    assert not (tmp_path / "fb.sqlite3").exists() or queries.export_rows(open_store(sqlite_settings)).empty
    store.close()
    open_store(sqlite_settings).close()
    feedback._stores.clear()


def test_the_write_path_does_not_need_pandas():
    code = ("import sys; from retrieval.store import open_store, FeedbackStore; "
            "print('pandas' in sys.modules, 'retrieval.store.queries' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_a_url_of_another_kind_is_said_so_and_the_store_still_made():
    store = FeedbackStore("mysql://user:pw@localhost/db")
    assert "postgresql://" in store.problem and "pw" not in store.problem
    assert ask(store) < 0
    store.close()


# -- writing -------------------------------------------------------------------------------------
def test_interaction_and_feedback_round_trip(make):
    store = make(clock=Clock())
    first = ask(store, "怎么给Tello充值？", language="zh")
    second = ask(store, kind="decline", provider=None, entry_id=None, topic=None, answered=False, score=None)
    assert (first, second) == (1, 2)
    store.log_feedback(interaction_id=first, rating=1, comment="  very clear  ")

    rows = queries.export_rows(store)
    assert rows["interaction_id"].tolist() == [1, 2]
    one = rows.iloc[0]
    assert (one["question"], one["language"], one["provider"], one["kind"], one["entry_id"], one["topic"]) == (
        "怎么给Tello充值？", "zh", "tello", "answer", "tello.topup_steps", "topup_steps")
    assert bool(one["answered"]) is True
    assert one["score"] == pytest.approx(0.91, abs=1e-12)  # a double, not PostgreSQL's 32-bit REAL
    assert (int(one["rating"]), one["comment"]) == (1, "very clear")
    assert one["asked_at"] == one["rated_at"] == "2025-01-02T03:04:05.000+00:00"
    two = rows.iloc[1]
    assert pd.isna(two["provider"]) and pd.isna(two["rating"]) and pd.isna(two["score"])
    assert bool(two["answered"]) is False


def test_a_numpy_score_is_accepted(make):
    store = make()
    ask(store, score=np.float32(0.5))
    assert queries.export_rows(store).loc[0, "score"] == 0.5


def test_timestamps_are_utc_even_when_the_clock_is_not(make):
    local = datetime(2025, 1, 2, 16, 0, tzinfo=timezone(timedelta(hours=8)))  # 08:00 UTC, in Beijing
    store = make(clock=Clock(local))
    ask(store)
    stamp = queries.export_rows(store).loc[0, "asked_at"]
    assert stamp == "2025-01-02T08:00:00.000+00:00"
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


def test_a_second_rating_replaces_the_first(make, where):
    store = make()
    interaction = ask(store)
    store.log_feedback(interaction_id=interaction, rating=1, comment="good")
    store.log_feedback(interaction_id=interaction, rating=0)
    assert raw(where, "SELECT interaction_id, rating, comment FROM feedback") == [(1, 0, None)]


@pytest.mark.parametrize("rating", [2, -1, "1", 1.0, None, True])
def test_a_rating_other_than_0_or_1_is_refused_by_name(make, rating):
    store = make()
    interaction = ask(store)
    with pytest.raises(ValueError, match=re.escape(repr(rating))):
        store.log_feedback(interaction_id=interaction, rating=rating)
    assert queries.feedback_by_entry(store).empty


@pytest.mark.parametrize("interaction", [42, -3])
def test_an_unknown_interaction_is_refused_by_id(make, where, interaction):
    store = make()
    ask(store)
    with pytest.raises(ValueError, match=f"unknown interaction_id {interaction}"):
        store.log_feedback(interaction_id=interaction, rating=1)
    assert raw(where, "SELECT COUNT(*) FROM feedback") == [(0,)]


@pytest.mark.parametrize("changes, bad", [({"kind": "answered"}, "'answered'"), ({"score": float("nan")}, "nan"),
                                          ({"score": "high"}, "'high'"), ({"score": True}, "True")])
def test_a_bad_interaction_is_refused_by_name(make, changes, bad):
    store = make()
    with pytest.raises(ValueError, match=re.escape(bad)):
        ask(store, **changes)
    assert queries.export_rows(store).empty


@pytest.mark.parametrize("kind, answered", [("decline", True), ("empty", True), ("not_understood", True),
                                            ("ask_provider", False), ("clarify", False), ("small_talk", False)])
def test_answered_must_agree_with_the_one_definition(make, kind, answered):
    store = make()
    with pytest.raises(ValueError, match="contradicts kind"):
        ask(store, kind=kind, answered=answered)
    assert queries.export_rows(store).empty


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


def test_secrets_are_stored_masked(make):
    store = make()
    interaction = ask(store, f"my card {CARD} was charged twice, cvv 123, 验证码 583920")
    store.log_feedback(interaction_id=interaction, rating=0, comment=f"still charged on {CARD.replace(' ', '-')}")
    row = queries.export_rows(store).iloc[0]
    assert row["question"] == "my card •••• •••• •••• •••• was charged twice, cvv •••, 验证码 ••••••"
    assert row["comment"] == "still charged on ••••-••••-••••-••••"


def test_a_long_comment_is_cut_and_a_blank_one_dropped(make):
    store = make()
    first, second = ask(store), ask(store)
    store.log_feedback(interaction_id=first, rating=1, comment="长" * 5000)
    store.log_feedback(interaction_id=second, rating=1, comment="   ")
    comments = queries.export_rows(store)["comment"].tolist()
    assert comments[0] == "长" * feedback.MAX_TEXT_CHARS
    assert pd.isna(comments[1])


@pytest.mark.parametrize("question", ["nul \x00 inside", "lone \ud800 surrogate", "\udfff", "\x00"])
def test_text_neither_database_can_hold_is_stored_the_same_on_both(make, question):
    store = make()
    interaction = ask(store, question)
    store.log_feedback(interaction_id=interaction, rating=1, comment=question)
    store.save_conversation("c", {"text": question})
    row = queries.export_rows(store).iloc[0]
    assert row["question"] == row["comment"] == storable(question) and "\ufffd" in row["question"]
    # JSON keeps a NUL as the escape \u0000, so only surrogates are replaced in a conversation.
    assert store.load_conversation("c") == {"text": re.sub("[\ud800-\udfff]", "\ufffd", question)}


@pytest.fixture
def shared(make) -> FeedbackStore:
    return make()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(question=st.text(max_size=300) | st.from_regex(r"[a-z ]{0,20}\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}"))
def test_the_stored_question_is_exactly_the_masked_one(shared, question):
    interaction = ask(shared, question)
    stored = shared.read(text(f"SELECT question FROM interactions WHERE id = {interaction}"))
    assert stored == [(storable(mask_secrets(question).text),)]


# -- concurrency ---------------------------------------------------------------------------------
def test_eight_threads_writing_lose_nothing(make, where):
    store = make()
    start = threading.Barrier(8)
    errors: list[BaseException] = []
    per_thread = 500 if isinstance(where, Path) else 250

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                interaction = ask(store, f"worker {worker} question {n}", session_id=f"w{worker}")
                store.log_feedback(interaction_id=interaction, rating=n % 2)
        except BaseException as e:  # a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = 8 * per_thread
    assert errors == [] and store.problem is None and store.queued == 0
    assert raw(where, "SELECT COUNT(*), COUNT(DISTINCT question) FROM interactions") == [(total, total)]
    assert raw(where, "SELECT COUNT(*), SUM(rating) FROM feedback") == [(total, total // 2)]
    assert queries.feedback_by_provider(store)["ratings"].tolist() == [total]


def test_two_processes_writing_at_once_lose_nothing_and_duplicate_nothing(make, where):
    # PostgreSQL syncs every commit to disk (about 6 ms here), so fewer there: 2,400 writes instead of 4,800.
    each = 1200 if isinstance(where, Path) else 600
    procs = start_writers(where, each)  # both create and migrate the database as they start
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert raw(where, "SELECT COUNT(*), COUNT(DISTINCT question) FROM interactions") == [(2 * each, 2 * each)]
    assert raw(where, "SELECT session_id, COUNT(*) FROM interactions GROUP BY session_id ORDER BY session_id") == [
        ("a", each), ("b", each)]
    assert raw(where, "SELECT COUNT(*), SUM(rating) FROM feedback") == [(2 * each, each)]


def test_a_write_retried_after_its_commit_was_lost_is_stored_once(make, where):
    """A server that restarts between COMMIT and its reply: the store cannot know the row is in, and tries again."""
    store = make()
    values = dict(asked_at="2025-01-01T00:00:00.000+00:00", session_id="s", question="q", language="en",
                  provider=None, kind="answer", entry_id=None, topic=None, answered=1, score=None,
                  write_key="the-same-key")
    first = store.db.run(lambda conn: feedback._insert_interaction(conn, values), write=True)
    again = store.db.run(lambda conn: feedback._insert_interaction(conn, values), write=True)
    assert first == again == 1
    assert raw(where, "SELECT COUNT(*) FROM interactions") == [(1,)]


def test_a_briefly_locked_database_is_waited_for(tmp_path, monkeypatch):
    from retrieval.store import database

    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 0.01)  # so our own retry loop does the waiting
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, blocker.execute, args=("COMMIT",))
    release.start()
    assert ask(store) == 1
    release.join()
    assert not blocker.in_transaction  # the lock really was held until the timer let go
    store.close()


# -- corruption (SQLite's file) -------------------------------------------------------------------
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

    with caplog.at_level(logging.WARNING, logger="retrieval.store"):
        store = FeedbackStore(path, clock=Clock())

    aside = tmp_path / "fb.sqlite3.corrupt-20250102T030405Z"
    assert store.recovered_from == aside and store.damaged_copies() == [aside]
    assert aside.read_bytes() == original  # kept as it was, for whoever wants to rescue it
    assert str(aside) in caplog.text and "damaged" in caplog.text
    assert raw(path, "PRAGMA quick_check") == [("ok",)]
    assert queries.export_rows(store).empty
    assert ask(store) == 1
    assert len(queries.export_rows(store)) == 1
    store.close()


def test_the_timestamped_name_is_utc_when_the_real_clock_is_used(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.write_bytes(b"garbage" * 100)
    store = FeedbackStore(path)
    assert re.fullmatch(r"fb\.sqlite3\.corrupt-\d{8}T\d{6}Z", store.recovered_from.name)
    store.close()


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
    # Both copies are listed for the operator, however many times the app restarted since.
    assert [p.name for p in FeedbackStore(path).damaged_copies()] == [
        "fb.sqlite3.corrupt-20250102T030405Z", "fb.sqlite3.corrupt-20250102T030405Z-1"]
    second.close()


def test_a_journal_left_beside_a_damaged_file_goes_with_it(tmp_path):
    path = tmp_path / "fb.sqlite3"
    path.write_bytes(b"garbage" * 100)
    (tmp_path / "fb.sqlite3-wal").write_bytes(b"old wal")
    store = FeedbackStore(path, clock=Clock())
    assert (tmp_path / "fb.sqlite3.corrupt-20250102T030405Z-wal").read_bytes() == b"old wal"
    assert store.damaged_copies() == [tmp_path / "fb.sqlite3.corrupt-20250102T030405Z"]
    assert ask(store) == 1
    store.close()


# -- reports ------------------------------------------------------------------------------------
@pytest.fixture
def known(make) -> FeedbackStore:
    """Nine questions over three UTC days (none on the middle one), four of them rated, two with comments."""
    clock = Clock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    store = make(clock=clock)
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
    ask(store, "asdfgh", provider=None, kind="not_understood", entry_id=None, topic=None, answered=False, score=None)
    for interaction, rating, comment in ((i1, 1, None), (i2, 0, "退款说得不清楚"), (i3, 0, "want crypto"),
                                         (i4, 1, None)):
        store.log_feedback(interaction_id=interaction, rating=rating, comment=comment)
    return store


def records(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


def test_questions_per_day_fills_quiet_days_with_zero(known):
    assert records(queries.questions_per_day(known)) == [("2025-03-01", 3), ("2025-03-02", 0), ("2025-03-03", 6)]


def test_answered_share_per_day_and_overall(known):
    assert records(queries.answered_share(known)) == [("2025-03-01", 3, 2, pytest.approx(2 / 3)),
                                                      ("2025-03-03", 6, 2, pytest.approx(1 / 3))]
    assert records(queries.answered_share(known, per_day=False)) == [(9, 4, pytest.approx(4 / 9))]


def test_counts_by_kind_add_up_to_the_answered_and_unanswered_totals(known):
    by_kind = queries.questions_by_kind(known)
    assert records(by_kind) == [("answer", True, 3), ("ask_provider", True, 1), ("decline", False, 3),
                                ("empty", False, 1), ("not_understood", False, 1)]
    overall = queries.answered_share(known, per_day=False).iloc[0]
    assert by_kind[by_kind["answered"]]["questions"].sum() == overall["answered"] == 4
    assert by_kind["questions"].sum() == overall["questions"] == 9
    # The declined list accounts for every decline (repeats folded into `times`).
    assert queries.declined_questions(known)["times"].sum() == by_kind.set_index("kind").loc["decline", "questions"]


def test_answered_follows_the_kind_for_rows_stored_under_the_old_meaning(make, where):
    store = make()
    ask(store, kind="ask_provider")
    # A row from before "answered" had one meaning: an ask-back stored as not answered.
    raw_engine = create_engine(locate(where).url)
    with raw_engine.begin() as conn:
        conn.execute(text("UPDATE interactions SET answered = 0"))
    raw_engine.dispose()
    assert records(queries.answered_share(store, per_day=False)) == [(1, 1, 1.0)]
    assert queries.export_rows(store)["answered"].tolist() == [True]


def test_unanswered_kinds_are_those_of_the_answer():
    assert set(queries.UNANSWERED_KINDS) == {Kind.DECLINE, Kind.EMPTY, Kind.NOT_UNDERSTOOD}


def test_top_topics_and_providers(known):
    assert records(queries.top_topics(known)) == [("topup_steps", 3), ("refund", 1)]
    assert records(queries.top_topics(known, 1)) == [("topup_steps", 3)]
    assert records(queries.top_providers(known)) == [("tello", 2), ("lycamobile", 1)]


@pytest.mark.parametrize("limit", [0, -3, 2.5, "10"])
def test_a_bad_limit_is_refused_by_name(known, limit):
    with pytest.raises(ValueError, match=re.escape(repr(limit))):
        queries.top_topics(known, limit)


def test_declined_questions_group_repeats_most_frequent_first(known):
    assert records(queries.declined_questions(known)) == [
        ("  can I BUY bitcoin? ", "en", None, 2, "2025-03-03T23:59:00.000+00:00"),
        ("怎么买比特币", "zh", None, 1, "2025-03-03T23:59:00.000+00:00"),
    ]
    assert len(queries.declined_questions(known, 1)) == 1


def test_feedback_by_provider_puts_no_provider_last(known):
    assert records(queries.feedback_by_provider(known)) == [("tello", 2, 1, 1, 0.5), ("lycamobile", 1, 1, 0, 1.0),
                                                            (None, 1, 0, 1, 0.0)]


def test_feedback_by_entry(known):
    assert records(queries.feedback_by_entry(known)) == [
        ("lycamobile.topup_steps", "topup_steps", "lycamobile", 1, 1, 0, 1.0),
        ("tello.refund", "refund", "tello", 1, 0, 1, 0.0),
        ("tello.topup_steps", "topup_steps", "tello", 1, 1, 0, 1.0),
        (None, None, None, 1, 0, 1, 0.0),
    ]


def test_comments_newest_first_with_their_question(known):
    assert [(r[1], r[2], r[3]) for r in records(queries.comments(known))] == [
        (0, "want crypto", "Can I buy bitcoin?"), (0, "退款说得不清楚", "tello 退款")]
    assert len(queries.comments(known, 1)) == 1


def test_export_rows_joins_everything(known):
    rows = queries.export_rows(known)
    assert len(rows) == 9
    assert rows["rating"].tolist()[:4] == [1, 0, 0, 1]
    assert rows["rating"].isna().tolist() == [False] * 4 + [True] * 5
    assert rows["answered"].tolist() == [True, True, False, True, False, False, True, False, False]
    assert rows["kind"].value_counts().to_dict() == {"answer": 3, "decline": 3, "ask_provider": 1, "empty": 1,
                                                     "not_understood": 1}


READERS = {
    "questions_per_day": ["day", "questions"],
    "answered_share": ["day", "questions", "answered", "share"],
    "questions_by_kind": ["kind", "answered", "questions"],
    "top_topics": ["topic", "questions"],
    "top_providers": ["provider", "questions"],
    "declined_questions": ["question", "language", "provider", "times", "last_asked"],
    "feedback_by_provider": ["provider", "ratings", "thumbs_up", "thumbs_down", "share_positive"],
    "feedback_by_entry": ["entry_id", "topic", "provider", "ratings", "thumbs_up", "thumbs_down", "share_positive"],
    "comments": ["rated_at", "rating", "comment", "question", "provider", "topic", "entry_id", "kind"],
    "export_rows": ["interaction_id", "asked_at", "session_id", "question", "language", "provider", "kind",
                    "entry_id", "topic", "answered", "score", "rating", "comment", "rated_at"],
}


@pytest.mark.parametrize("reader", READERS)
def test_an_empty_database_gives_empty_frames_with_the_columns(reader, known, tmp_path):
    empty_store = FeedbackStore(tmp_path / "empty" / "fb.sqlite3")
    empty = getattr(queries, reader)(empty_store)
    full = getattr(queries, reader)(known)
    assert empty.empty and list(empty.columns) == READERS[reader]
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()  # same shape whether or not there is data
    empty_store.close()


def test_overall_share_of_an_empty_database_is_empty_not_nan(make):
    frame = queries.answered_share(make(), per_day=False)
    assert frame.empty and list(frame.columns) == ["questions", "answered", "share"]


@pytest.mark.parametrize("reader", ["answered_share", "feedback_by_provider", "feedback_by_entry"])
def test_rates_are_never_nan(known, reader):
    frame = getattr(queries, reader)(known)
    rate = "share" if reader == "answered_share" else "share_positive"
    assert frame[rate].notna().all() and frame[rate].between(0, 1).all()


# -- CSV -----------------------------------------------------------------------------------------
def test_csv_is_excel_friendly_and_defuses_formulas(known):
    ask(known, "=HYPERLINK(\"http://evil\")", kind="decline", answered=False)
    data = queries.export_csv(known)
    assert data.startswith("\ufeff".encode())
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert len(back) == 10
    assert "tello 退款" in back["question"].tolist()
    assert back["question"].iloc[-1] == "'=HYPERLINK(\"http://evil\")"


def test_csv_of_nothing_is_just_the_header():
    assert queries.csv_bytes(pd.DataFrame(columns=["a", "b"])).decode("utf-8-sig").strip() == "a,b"


# -- conversations and undo ----------------------------------------------------------------------
def test_conversation_round_trip_masks_secrets_and_replaces(make):
    store = make()
    store.save_conversation("c1", {"messages": [{"role": "user", "text": "card 4111 1111 1111 1111"}], "step": 2})
    saved = store.load_conversation("c1")
    assert saved["step"] == 2 and "4111" not in saved["messages"][0]["text"]
    store.save_conversation("c1", {"step": 3})
    assert store.load_conversation("c1") == {"step": 3}
    assert store.load_conversation("unknown") is None
    assert store.load_conversation("x" * 65) is None
    with pytest.raises(ValueError):
        store.save_conversation("", {})


def test_clear_feedback_undoes_a_rating(make):
    store = make()
    i = store.log_interaction(session_id="s", question="q", language="en", provider=None, kind="answer",
                              entry_id=None, topic=None, answered=True, score=None)
    store.log_feedback(interaction_id=i, rating=0, comment="wrong")
    store.clear_feedback(interaction_id=i)
    assert queries.export_rows(store)["rating"].isna().all()


# -- the operator's inbox (issue 15) -------------------------------------------------------------------
def test_what_an_answer_offered_is_kept_best_first_with_its_margin(make, where):
    store = make()
    ask(store, offered=[("a", 0.5), ("b", 0.375), ("c", 0.1), ("d", 0.01)])
    ask(store, offered=[("a", 0.9)])
    ask(store)
    assert raw(where, "SELECT offered, margin FROM interactions ORDER BY id") == [
        ('[["a", 0.5], ["b", 0.375], ["c", 0.1]]', 0.125), ('[["a", 0.9]]', None), (None, None)]


@pytest.mark.parametrize("offered", [[("a", float("nan"))], [(1, 0.5)], ["a"], [("a", True)]])
def test_a_bad_offer_is_refused_by_name(make, offered):
    with pytest.raises(ValueError, match="offered must hold"):
        ask(make(), offered=offered)


@pytest.fixture
def inbox(make) -> FeedbackStore:
    """One question of each reason, and some that are not in the inbox."""
    store = make()
    declined = ask(store, "can I buy bitcoin", session_id="a", kind="decline", entry_id=None, answered=False)
    rated = ask(store, "tello 最低充多少", session_id="b", language="zh", offered=[("tello-amount", 0.9),
                                                                           ("tello-topup", 0.05)])
    store.log_feedback(interaction_id=rated, rating=0, comment="金额过时了")
    ask(store, "how do I top up", session_id="c", provider=None, kind="ask_provider", entry_id=None)
    ask(store, "tello", session_id="c")  # the ask-back was answered: not in the inbox
    ask(store, "which provider?", session_id="d", provider=None, kind="ask_provider", entry_id=None)
    ask(store, "close one", session_id="e", offered=[("x", 0.45), ("y", 0.35)])
    ask(store, "clear one", session_id="e", offered=[("x", 0.9), ("y", 0.05)])
    ask(store, "   ", session_id="f", kind="empty", entry_id=None, answered=False, score=None)
    liked = ask(store, "liked", session_id="g", kind="decline", entry_id=None, answered=False)
    store.log_feedback(interaction_id=liked, rating=1)
    store.declined = declined
    return store


def test_the_inbox_holds_what_went_wrong_newest_first(inbox):
    frame = queries.inbox_items(inbox)
    assert records(frame[["question", "reason", "rating", "comment"]]) == [
        ("liked", "declined", 1, None), ("close one", "close_call", None, None),
        ("which provider?", "ask_back_unanswered", None, None), ("tello 最低充多少", "thumbs_down", 0, "金额过时了"),
        ("can I buy bitcoin", "declined", None, None)]
    assert frame["offered"][3] == '[["tello-amount", 0.9], ["tello-topup", 0.05]]'


def test_a_close_call_is_measured_by_the_margin_asked(inbox):
    assert "close one" not in queries.inbox_items(inbox, close_margin=0.05)["question"].tolist()
    assert "clear one" in queries.inbox_items(inbox, close_margin=0.9)["question"].tolist()


def test_an_action_takes_its_questions_out_of_the_inbox_and_records_who_and_when(inbox, where):
    action = inbox.record_action(actor=f"Ann {CARD}", action="out_of_scope", group_id="g-1",
                                 questions=[f"bitcoin {CARD}"], effect={"note": CARD}, interactions=[inbox.declined])
    assert "can I buy bitcoin" not in queries.inbox_items(inbox)["question"].tolist()
    (row,) = records(queries.actions(inbox))
    assert row[0] == action and datetime.fromisoformat(row[1]).tzinfo is not None
    assert row[2:] == ("Ann •••• •••• •••• ••••", "out_of_scope", "g-1", None, '["bitcoin •••• •••• •••• ••••"]',
                       None, '{"note": "•••• •••• •••• ••••"}')
    assert CARD not in str(raw(where, "SELECT * FROM inbox_actions"))
    # The same question asked again, and declined again, is back: the action did not help it.
    ask(inbox, "can I buy bitcoin", session_id="z", kind="decline", entry_id=None, answered=False)
    assert queries.inbox_items(inbox)["question"].tolist().count("can I buy bitcoin") == 1


@pytest.mark.parametrize(("changes", "message"), [({"actor": " "}, "actor must say who"),
                                                  ({"action": "delete"}, "action must be one of"),
                                                  ({"group_id": ""}, "group_id must be")])
def test_an_action_is_refused_by_name(make, changes, message):
    with pytest.raises(ValueError, match=message):
        make().record_action(**{"actor": "Ann", "action": "attach", "group_id": "g-1", "questions": ["q"],
                                **changes})


def test_a_reported_mistake_lands_in_the_inbox_masked_with_its_question(make, where):
    store = make()
    answered = ask(store, "tello minimum", entry_id="tello-amount")
    store.report_mistake(session_id="s1", entry_id="tello-amount", interaction_id=answered,
                         text=f"  the minimum is $10 now, paid with {CARD}  ")
    store.report_mistake(session_id="s2", entry_id="gv-rates", text="dead link")
    assert records(queries.open_reports(store)[["entry_id", "text", "question"]]) == [
        ("gv-rates", "dead link", None),
        ("tello-amount", "the minimum is $10 now, paid with •••• •••• •••• ••••", "tello minimum")]
    assert CARD not in str(raw(where, "SELECT * FROM reports"))
    ids = queries.open_reports(store)["report_id"].tolist()
    store.record_action(actor="Ann", action="fixed", group_id="entry:gv-rates", questions=["dead link"],
                        entry_id="gv-rates", reports=[ids[0]])
    assert queries.open_reports(store)["entry_id"].tolist() == ["tello-amount"]


@pytest.mark.parametrize(("changes", "message"), [({"entry_id": ""}, "entry_id must name"),
                                                  ({"text": "   "}, "a few words"),
                                                  ({"interaction_id": "1"}, "interaction_id must be")])
def test_a_report_is_refused_by_name(make, changes, message):
    with pytest.raises(ValueError, match=message):
        make().report_mistake(**{"session_id": "s", "entry_id": "gv-rates", "text": "wrong", **changes})


def test_a_report_made_while_the_database_is_away_is_kept_with_its_question(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    store._went_down(StoreUnavailable("away for the test"))  # writes now wait in memory, in order
    stand_in = ask(store, "tello minimum")
    assert stand_in < 0
    store.report_mistake(session_id="s1", entry_id="tello-amount", interaction_id=stand_in, text="outdated")
    assert store.flush() == 0
    assert records(queries.open_reports(store)[["entry_id", "question"]]) == [("tello-amount", "tello minimum")]
    store.close()
