"""Feedback: every question asked and every 👍/👎, in a SQLite file that survives concurrent sessions and corruption."""

from __future__ import annotations

import json
import logging
import math
import numbers
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pandas as pd

from retrieval.serving.answer import Kind
from retrieval.serving.safety import mask_secrets

__all__ = ["KINDS", "MAX_TEXT_CHARS", "SCHEMA_VERSION", "FeedbackError", "FeedbackStore", "csv_bytes"]

log = logging.getLogger(__name__)
T = TypeVar("T")

KINDS = tuple(kind.value for kind in Kind)
MAX_TEXT_CHARS = 2000
# SQLite's own busy handler waits this long for a lock; our retry loop covers the rarer
# SQLITE_BUSY that the handler cannot wait out (a lock upgrade, WAL recovery after a crash).
BUSY_TIMEOUT_S = 5.0
RETRY_FOR_S = 15.0

# MIGRATIONS[i] takes a database from user_version i to i + 1; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE interactions (
            id         INTEGER PRIMARY KEY,
            asked_at   TEXT NOT NULL,            -- UTC, ISO 8601
            session_id TEXT NOT NULL,
            question   TEXT NOT NULL,            -- secrets masked
            language   TEXT NOT NULL,
            provider   TEXT,
            kind       TEXT NOT NULL,
            entry_id   TEXT,
            topic      TEXT,
            answered   INTEGER NOT NULL CHECK (answered IN (0, 1)),
            score      REAL
        )""",
        "CREATE INDEX interactions_asked_at ON interactions (asked_at)",
        "CREATE INDEX interactions_kind ON interactions (kind)",
        """CREATE TABLE feedback (
            interaction_id INTEGER PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
            rating         INTEGER NOT NULL CHECK (rating IN (0, 1)),
            comment        TEXT,                 -- secrets masked, at most MAX_TEXT_CHARS
            rated_at       TEXT NOT NULL         -- UTC, ISO 8601
        )""",
    ),
    (
        # What the page needs to restore a conversation after a reload: the messages shown (secrets
        # already masked) and the walkthrough step, as JSON, under the id kept in the page's URL.
        """CREATE TABLE conversations (
            id         TEXT PRIMARY KEY,
            updated_at TEXT NOT NULL,            -- UTC, ISO 8601
            data       TEXT NOT NULL             -- JSON object
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Column order and dtypes of every frame we return, so an empty database gives the same shape.
PER_DAY = {"day": "str", "questions": "int64"}
ANSWERED = {"questions": "int64", "answered": "int64"}  # share is computed
COUNTS = {"ratings": "int64", "thumbs_up": "int64", "thumbs_down": "int64"}  # share_positive is computed
DECLINED = {"question": "str", "language": "str", "provider": "str", "times": "int64", "last_asked": "str"}
EXPORT = {"interaction_id": "int64", "asked_at": "str", "session_id": "str", "question": "str", "language": "str",
          "provider": "str", "kind": "str", "entry_id": "str", "topic": "str", "answered": "bool",
          "score": "float64", "rating": "Int64", "comment": "str", "rated_at": "str"}


class FeedbackError(Exception):
    """The feedback database could not be used; the message says what to do."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _code(error: sqlite3.Error) -> int:
    # Extended result codes (SQLITE_BUSY_RECOVERY, ...) keep the primary code in the low byte.
    return (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF


def _is_busy(error: sqlite3.Error) -> bool:
    return _code(error) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error)


def _is_corrupt(error: sqlite3.Error) -> bool:
    return _code(error) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _frame(rows: Sequence[Sequence], schema: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(rows), columns=list(schema)).astype(schema)


def _with_share(frame: pd.DataFrame, part: str, whole: str, share: str) -> pd.DataFrame:
    # Every row here has whole >= 1 (groups come from existing rows), so the share is never NaN.
    frame[share] = (frame[part] / frame[whole]).astype("float64") if len(frame) else pd.Series(dtype="float64")
    return frame


def _clean(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}: {text!r}")
    # Masking before cutting, so a card number straddling the cut is still recognised whole.
    return mask_secrets(text).text[:MAX_TEXT_CHARS]


def _positive(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive whole number, got {limit!r}")
    return limit


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


class FeedbackStore:
    """The feedback database at `path`; safe to share between threads and Streamlit sessions.

    Each operation opens its own short-lived connection, so one instance can be cached and used
    from every session's thread at once; WAL lets readers and one writer work side by side.
    One idle connection stays open for the store's lifetime (see `close`).

    >>> import tempfile
    >>> store = FeedbackStore(Path(tempfile.mkdtemp()) / "fb.sqlite3")
    >>> i = store.log_interaction(session_id="s", question="card 4111 1111 1111 1111?", language="en",
    ...                           provider=None, kind="decline", entry_id=None, topic=None, answered=False, score=None)
    >>> store.log_feedback(interaction_id=i, rating=0)
    >>> row = store.export_rows().iloc[0]
    >>> row["question"], int(row["rating"])
    ('card •••• •••• •••• ••••?', 0)
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now):
        self.path = Path(path)
        self.clock = clock
        self.recovered_from: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FeedbackError(f"Cannot create the folder for the feedback database {self.path}: {e}. "
                                "Point ASSISTANT_FEEDBACK_DB at a writable location.") from e
        if self.path.is_dir():
            raise FeedbackError(f"The feedback database path {self.path} is a folder; "
                                "point ASSISTANT_FEEDBACK_DB at a file inside it instead.")
        problem = self._retry(self._integrity_problem)
        if problem is not None:
            self.recovered_from = self._move_aside(problem)
        self._retry(self._migrate)
        # Without one connection held open, every operation's connection is the last to close, and
        # SQLite then checkpoints and syncs the WAL: about 20 ms per write instead of under 1 ms.
        self._keeper = self._retry(self._open_keeper)

    def close(self) -> None:
        """Let go of the file; the store must not be used afterwards."""
        self._keeper.close()

    # -- writing ----------------------------------------------------------------------------
    def log_interaction(self, *, session_id: str, question: str, language: str, provider: str | None, kind: str,
                        entry_id: str | None, topic: str | None, answered: bool, score: float | None) -> int:
        """Record one question and what the assistant did with it; returns the interaction id."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        # numbers.Real, not float: the ranker's scores may be numpy float32.
        if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)
                                  or not math.isfinite(score)):
            raise ValueError(f"score must be a finite number or None, got {score!r}")
        # Masked here as well as in the assistant: a caller that forgets must not put a card number on disk.
        row = (self._now(), str(session_id), _clean(question, "question") or "", str(language), provider,
               str(kind), entry_id, topic, int(bool(answered)), None if score is None else float(score))

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO interactions (asked_at, session_id, question, language, provider, kind, entry_id,"
                " topic, answered, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return int(cursor.lastrowid)

        return self._write(insert)

    def log_feedback(self, *, interaction_id: int, rating: int, comment: str | None = None) -> None:
        """Record 👍 (1) or 👎 (0) for an interaction; a second call for the same one replaces the first."""
        if isinstance(rating, bool) or not isinstance(rating, int) or rating not in (0, 1):
            raise ValueError(f"rating must be 1 (👍) or 0 (👎), got {rating!r}")
        if isinstance(interaction_id, bool) or not isinstance(interaction_id, int):
            raise ValueError(f"interaction_id must be a whole number, got {interaction_id!r}")
        comment = (_clean(comment, "comment") or "").strip() or None
        row = (interaction_id, rating, comment, self._now())

        def upsert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone() is None:
                raise ValueError(f"unknown interaction_id {interaction_id}: log_interaction returns the ids to use")
            conn.execute(
                "INSERT INTO feedback (interaction_id, rating, comment, rated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (interaction_id) DO UPDATE SET"
                " rating = excluded.rating, comment = excluded.comment, rated_at = excluded.rated_at", row)

        self._write(upsert)

    def clear_feedback(self, *, interaction_id: int) -> None:
        """Undo a 👍/👎 (and its comment): the user clicked the same thumb again."""
        if isinstance(interaction_id, bool) or not isinstance(interaction_id, int):
            raise ValueError(f"interaction_id must be a whole number, got {interaction_id!r}")
        self._write(lambda conn: conn.execute("DELETE FROM feedback WHERE interaction_id = ?", (interaction_id,)))

    def save_conversation(self, conversation_id: str, data: dict) -> None:
        """Keep a conversation's state (a JSON-serialisable dict) under its id, replacing the last copy.

        Text in it is masked again here, so a card number typed into the page never reaches the disk."""
        if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= 64:
            raise ValueError(f"conversation_id must be text of 1 to 64 characters, got {conversation_id!r}")
        payload = mask_secrets(json.dumps(data, ensure_ascii=False)).text
        row = (conversation_id, self._now(), payload)

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO conversations (id, updated_at, data) VALUES (?, ?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, data = excluded.data",
                         row)

        self._write(upsert)

    def load_conversation(self, conversation_id: str) -> dict | None:
        """The state last saved under `conversation_id`, or None when there is none (or it is unreadable)."""
        if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= 64:
            return None

        def attempt() -> list[tuple]:
            with self._connect() as conn:
                return conn.execute("SELECT data FROM conversations WHERE id = ?", (conversation_id,)).fetchall()

        rows = self._retry(attempt)
        if not rows:
            return None
        try:
            data = json.loads(rows[0][0])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- reading, for the insights page ----------------------------------------------------
    def questions_per_day(self) -> pd.DataFrame:
        """Columns day (UTC, YYYY-MM-DD), questions; days without questions in between appear with 0."""
        frame = self._read("SELECT substr(asked_at, 1, 10) AS day, COUNT(*) AS questions FROM interactions"
                           " GROUP BY day ORDER BY day", PER_DAY)
        if frame.empty:
            return frame
        # A line chart would otherwise draw a straight line across a quiet day.
        days = pd.date_range(frame["day"].iloc[0], frame["day"].iloc[-1], freq="D").strftime("%Y-%m-%d")
        filled = frame.set_index("day").reindex(days, fill_value=0).rename_axis("day").reset_index()
        return filled.astype(PER_DAY)

    def answered_share(self, *, per_day: bool = True) -> pd.DataFrame:
        """Columns [day,] questions, answered, share: per UTC day, or one row for everything (per_day=False).

        Days without questions have no row (a share of nothing is undefined); so has an empty database.
        """
        if per_day:
            frame = self._read("SELECT substr(asked_at, 1, 10) AS day, COUNT(*) AS questions,"
                               " SUM(answered) AS answered FROM interactions GROUP BY day ORDER BY day",
                               {"day": "str", **ANSWERED})
            return _with_share(frame, "answered", "questions", "share")
        frame = self._read("SELECT COUNT(*) AS questions, COALESCE(SUM(answered), 0) AS answered FROM interactions",
                           ANSWERED)
        return _with_share(frame[frame["questions"] > 0].reset_index(drop=True), "answered", "questions", "share")

    def top_topics(self, limit: int = 10) -> pd.DataFrame:
        """Columns topic, questions: the most asked topics, most first."""
        return self._read("SELECT topic, COUNT(*) AS questions FROM interactions WHERE topic IS NOT NULL"
                          " GROUP BY topic ORDER BY questions DESC, topic LIMIT ?",
                          {"topic": "str", "questions": "int64"}, (_positive(limit),))

    def top_providers(self, limit: int = 10) -> pd.DataFrame:
        """Columns provider, questions: the most asked-about providers, most first."""
        return self._read("SELECT provider, COUNT(*) AS questions FROM interactions WHERE provider IS NOT NULL"
                          " GROUP BY provider ORDER BY questions DESC, provider LIMIT ?",
                          {"provider": "str", "questions": "int64"}, (_positive(limit),))

    def declined_questions(self, limit: int = 50) -> pd.DataFrame:
        """Columns question, language, provider, times, last_asked: the knowledge base's to-do list.

        The same question typed again (ignoring case and surrounding spaces) counts once, shown in its
        latest wording; most frequent first, then most recent.
        """
        # With a single MAX() SQLite takes the bare columns from the row holding the maximum: the latest wording.
        return self._read("SELECT question, language, provider, COUNT(*) AS times, MAX(asked_at) AS last_asked"
                          " FROM interactions WHERE kind = 'decline' GROUP BY lower(trim(question))"
                          " ORDER BY times DESC, last_asked DESC LIMIT ?", DECLINED, (_positive(limit),))

    def feedback_by_provider(self) -> pd.DataFrame:
        """Columns provider, ratings, thumbs_up, thumbs_down, share_positive; most rated first, no provider last."""
        return self._ratings_by("provider", {"provider": "str"})

    def feedback_by_entry(self) -> pd.DataFrame:
        """Columns entry_id, topic, provider, ratings, thumbs_up, thumbs_down, share_positive."""
        return self._ratings_by("entry_id", {"entry_id": "str", "topic": "str", "provider": "str"})

    def export_rows(self) -> pd.DataFrame:
        """Every interaction with its feedback (if any), oldest first: the CSV export."""
        return self._read(
            "SELECT i.id AS interaction_id, i.asked_at, i.session_id, i.question, i.language, i.provider, i.kind,"
            " i.entry_id, i.topic, i.answered, i.score, f.rating, f.comment, f.rated_at"
            " FROM interactions i LEFT JOIN feedback f ON f.interaction_id = i.id ORDER BY i.id", EXPORT)

    def export_csv(self) -> bytes:
        """export_rows() as spreadsheet-safe CSV bytes."""
        return csv_bytes(self.export_rows())

    # -- plumbing ---------------------------------------------------------------------------
    def _ratings_by(self, key: str, keys: dict[str, str]) -> pd.DataFrame:
        # Feedback rows only exist for interactions that exist, so the inner join loses nothing.
        columns = ", ".join(f"i.{name}" for name in keys)
        frame = self._read(
            f"SELECT {columns}, COUNT(*) AS ratings, SUM(f.rating) AS thumbs_up, COUNT(*) - SUM(f.rating) AS"
            f" thumbs_down FROM feedback f JOIN interactions i ON i.id = f.interaction_id GROUP BY i.{key}"
            f" ORDER BY ratings DESC, i.{key} IS NULL, i.{key}", {**keys, **COUNTS})
        return _with_share(frame, "thumbs_up", "ratings", "share_positive")

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN ourselves, so a write takes its lock up front (IMMEDIATE)
        # instead of upgrading a read lock halfway, which SQLite cannot wait for and fails at once.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            # Safe with WAL: a power cut may lose the last commits, never corrupt the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        finally:
            conn.close()

    def _retry(self, operation: Callable[[], T]) -> T:
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.01
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise FeedbackError(f"The feedback database {self.path} could not be used: {e}.") from e
                if time.monotonic() >= deadline:
                    raise FeedbackError(f"The feedback database {self.path} stayed locked for {RETRY_FOR_S:.0f}s;"
                                        " another program may be holding it open. Try again.") from e
                time.sleep(delay * (1 + random.random()))  # jitter, so waiting threads do not retry in step
                delay = min(delay * 2, 0.5)
            except sqlite3.DatabaseError as e:
                if _is_corrupt(e):
                    raise FeedbackError(f"The feedback database {self.path} is damaged ({e}); restart the app so"
                                        " it is moved aside and a fresh one is started.") from e
                raise FeedbackError(f"The feedback database {self.path} refused the change: {e}.") from e

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

        return self._retry(attempt)

    def _read(self, sql: str, schema: dict[str, str], params: tuple = ()) -> pd.DataFrame:
        def attempt() -> list[tuple]:
            with self._connect() as conn:
                return conn.execute(sql, params).fetchall()

        return _frame(self._retry(attempt), schema)

    def _integrity_problem(self) -> str | None:
        """What is wrong with the file, or None when it is a healthy database (or not there yet)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        # Read-only: a writable connection would, on closing, fold a WAL into the damaged file or
        # delete one it cannot make sense of, and the evidence we promise to keep would be gone.
        probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            rows = probe.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as e:
            if _is_corrupt(e):
                return str(e)
            raise  # busy: retried by the caller; anything else: reported as it is
        finally:
            probe.close()
        if rows == [("ok",)]:
            return None
        return "; ".join(str(row[0]) for row in rows[:5])

    def _move_aside(self, problem: str) -> Path:
        stamp = self.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():  # two recoveries within a second: keep both, never overwrite
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            self.path.rename(target)
            # A journal or WAL left beside the broken file belongs to it; replayed onto the fresh
            # database it would bring the damage back, so it travels along under the matching name.
            for suffix in ("-wal", "-shm", "-journal"):
                sidecar = self.path.with_name(self.path.name + suffix)
                if sidecar.exists():
                    sidecar.rename(target.with_name(target.name + suffix))
        except OSError as e:
            raise FeedbackError(f"The feedback database {self.path} is damaged ({problem}) and could not be moved"
                                f" aside: {e}. Move it away by hand and restart.") from e
        log.warning("The feedback database %s was damaged (%s); moved it to %s and started a fresh one.",
                    self.path, problem, target)
        return target

    def _open_keeper(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the file for real
        return conn

    def _migrate(self) -> None:
        with self._connect() as conn:
            # Persistent in the file; only needs setting once, but is cheap to repeat.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise FeedbackError(f"The feedback database {self.path} has schema version {version}, newer"
                                        f" than this app's {SCHEMA_VERSION}; update the app or point"
                                        " ASSISTANT_FEEDBACK_DB at another file.")
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
