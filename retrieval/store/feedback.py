"""Feedback: every question asked, every 👍/👎 and each conversation, kept even while the database is away.

The chat's write path. `open_store` gives every page (and the API) of one process the same store. Reports
for the insights page are in `queries.py`; this module does not need pandas.

When the database cannot be written (read-only, locked for longer than RETRY_FOR_S, a full disk, a
PostgreSQL server that is down) nothing here raises: the write waits in memory, in order, and a background
thread writes it when the database is back. At most MAX_QUEUED writes wait; past that the oldest is dropped
(and counted in `dropped`), and whatever is still waiting when the process stops is lost.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Executable, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from retrieval.serving.answer import UNANSWERED, Kind
from retrieval.serving.safety import mask_secrets
from retrieval.settings import Settings
from retrieval.store.database import OPEN_FOR_S, RETRY_FOR_S, Database, StoreError, StoreUnavailable, locate
from retrieval.store.schema import (
    ACTIONS,
    SCHEMA_VERSION,
    conversations,
    feedback,
    inbox_actions,
    inbox_resolved,
    interactions,
    reports,
)

__all__ = ["ACTIONS", "KINDS", "MAX_QUEUED", "MAX_TEXT_CHARS", "OFFERED_KEPT", "SCHEMA_VERSION", "FeedbackError",
           "FeedbackStore", "StoreUnavailable", "open_store"]

log = logging.getLogger(__name__)

KINDS = tuple(kind.value for kind in Kind)
MAX_TEXT_CHARS = 2000
MAX_QUEUED = 1000
OFFERED_KEPT = 3  # the entries an answer offered that are kept with the question, best first
MAX_ACTOR_CHARS = 100
# The background writer's first retry after a failure, doubling up to RETRY_MAX_S while the database stays away.
RETRY_EVERY_S = 1.0
RETRY_MAX_S = 30.0
DROPPED = 0  # a stand-in id's entry once its question was dropped (real ids start at 1)
FeedbackError = StoreError  # the name the pages have always caught
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def storable(text: str) -> str:
    r"""`text` with what neither database can hold replaced by U+FFFD: NUL (PostgreSQL refuses it in text) and
    lone surrogates (no UTF-8 encoder accepts them), so both keep the same string.

    >>> storable("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    True
    """
    return UNSTORABLE.sub("\ufffd", text)


def _clean(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, got {type(text).__name__}: {text!r}")
    # Masking before cutting, so a card number straddling the cut is still recognised whole.
    return storable(mask_secrets(text).text[:MAX_TEXT_CHARS])


def _whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return value


def _offered(offered: Iterable[Any]) -> tuple[str | None, float | None]:
    """(JSON [[entry_id, score], ...] of the first OFFERED_KEPT, first score minus second) from hits or pairs."""
    pairs = []
    for item in offered:
        pair = (item.entry_id, item.score) if hasattr(item, "entry_id") else item
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"offered must hold (entry_id, score) pairs or hits, got {item!r}")
        entry_id, score = pair
        if not isinstance(entry_id, str) or isinstance(score, bool) or not isinstance(score, numbers.Real) \
                or not math.isfinite(score):
            raise ValueError(f"offered must hold (entry_id, score) pairs or hits, got {item!r}")
        pairs.append([entry_id, round(float(score), 4)])
        if len(pairs) == OFFERED_KEPT:
            break
    if not pairs:
        return None, None
    margin = pairs[0][1] - pairs[1][1] if len(pairs) > 1 else None
    return json.dumps(pairs), margin


def _conversation_id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ValueError(f"conversation_id must be text of 1 to 64 characters, got {value!r}")
    return value


# -- the statements of the write path -----------------------------------------------------------------
def _insert(conn: Connection, table):
    """INSERT with ON CONFLICT, which both databases spell the same but SQLAlchemy builds per dialect."""
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


def _insert_interaction(conn: Connection, values: dict) -> int:
    # A retry of a write that did reach the database finds the row by its key instead of adding another.
    conn.execute(_insert(conn, interactions).values(**values).on_conflict_do_nothing(index_elements=["write_key"]))
    return conn.execute(select(interactions.c.id).where(interactions.c.write_key == values["write_key"])).scalar_one()


def _upsert_feedback(conn: Connection, values: dict) -> None:
    interaction_id = values["interaction_id"]
    if conn.execute(select(interactions.c.id).where(interactions.c.id == interaction_id)).first() is None:
        raise ValueError(f"unknown interaction_id {interaction_id}: log_interaction returns the ids to use")
    statement = _insert(conn, feedback).values(**values)
    conn.execute(statement.on_conflict_do_update(index_elements=["interaction_id"], set_={
        "rating": statement.excluded.rating, "comment": statement.excluded.comment,
        "rated_at": statement.excluded.rated_at}))


def _delete_feedback(conn: Connection, values: dict) -> None:
    conn.execute(delete(feedback).where(feedback.c.interaction_id == values["interaction_id"]))


def _upsert_conversation(conn: Connection, values: dict) -> None:
    statement = _insert(conn, conversations).values(**values)
    conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_={
        "updated_at": statement.excluded.updated_at, "data": statement.excluded.data}))


def _insert_report(conn: Connection, values: dict) -> None:
    interaction_id = values["interaction_id"]
    if interaction_id is not None and conn.execute(
            select(interactions.c.id).where(interactions.c.id == interaction_id)).first() is None:
        values = {**values, "interaction_id": None}  # the question is gone; the report still counts
    conn.execute(_insert(conn, reports).values(**values).on_conflict_do_nothing(index_elements=["write_key"]))


def _insert_action(conn: Connection, values: dict) -> int:
    resolved, reported = values.pop("interactions"), values.pop("reports")
    action_id = conn.execute(inbox_actions.insert().values(**values).returning(inbox_actions.c.id)).scalar_one()
    known = set(conn.execute(select(interactions.c.id).where(interactions.c.id.in_(resolved))).scalars()) \
        if resolved else set()
    for interaction_id in sorted(known):
        conn.execute(_insert(conn, inbox_resolved).values(interaction_id=interaction_id, action_id=action_id)
                     .on_conflict_do_update(index_elements=["interaction_id"], set_={"action_id": action_id}))
    if reported:
        conn.execute(update(reports).where(reports.c.id.in_(reported)).values(action_id=action_id))
    return action_id


STATEMENTS: dict[str, Callable[[Connection, dict], Any]] = {
    "interaction": _insert_interaction, "feedback": _upsert_feedback, "clear": _delete_feedback,
    "conversation": _upsert_conversation, "report": _insert_report,
}


@dataclass
class _Write:
    """One write, done now or waiting its turn; `ref` is a waiting interaction's stand-in id (negative)."""

    what: str
    values: dict
    ref: int | None = None
    key: str = field(default="")  # conversations: the id, so a newer copy replaces a waiting one


class FeedbackStore:
    """The store at `where`: a SQLite file path, or a `postgresql://` URL. Safe to share between threads.

    Constructing it never fails for I/O: when the database cannot be opened, `problem` says why, writes
    wait in memory, and the store keeps trying in the background.

    >>> import tempfile
    >>> store = FeedbackStore(Path(tempfile.mkdtemp()) / "fb.sqlite3")
    >>> i = store.log_interaction(session_id="s", question="card 4111 1111 1111 1111?", language="en",
    ...                           provider=None, kind="decline", entry_id=None, topic=None, answered=False, score=None)
    >>> store.log_feedback(interaction_id=i, rating=0)
    >>> store.read(select(interactions.c.question, feedback.c.rating).join(feedback))
    [('card •••• •••• •••• ••••?', 0)]
    >>> store.problem is None
    True
    """

    def __init__(self, where: Path | str, *, clock: Callable[[], datetime] = _utc_now):
        self.clock = clock
        self.recovered_from: Path | None = None
        self.dropped = 0
        self._lock = threading.Lock()         # the queue, the stand-in ids and the state below
        self._flushing = threading.Lock()     # one writer of the queue at a time
        self._queue: deque[_Write] = deque()
        self._resolved: OrderedDict[int, int | None] = OrderedDict()  # stand-in id -> real id, None: waiting
        self._next_ref = 0
        self._problem: str | None = None
        self._needs_open = True
        self._retry_in = RETRY_EVERY_S
        self._wake = threading.Event()       # a write is waiting while the database is there
        self._stopping = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        try:
            self.db: Database | None = Database(locate(where), clock)
        except ValueError as e:
            self.db = None
            self._went_down(StoreUnavailable(f"The feedback database cannot be used: {e}"))
            return
        try:
            self._open()
        except StoreError as e:  # unreachable, read-only, ...; or a newer schema, which is never written to
            self._went_down(e)

    # -- state -------------------------------------------------------------------------------------
    @property
    def problem(self) -> str | None:
        """Why the database cannot be written just now, or None when it can."""
        return self._problem

    @property
    def queued(self) -> int:
        """Writes waiting in memory for the database to come back."""
        return len(self._queue)

    @property
    def where(self) -> str:
        """The database, as it may be shown: a path, or a URL without its password."""
        return self.db.shown if self.db else "(no database)"

    def damaged_copies(self) -> list[Path]:
        """Damaged database files that were moved aside and are still there, for the operator to see."""
        return self.db.damaged_copies() if self.db else []

    def close(self) -> None:
        """Stop the background writer, write what waits if the database is there, and let go of it."""
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=RETRY_FOR_S + 5)
        if self._queue:
            self.flush()
        if self._queue:
            log.error("%d writes to the feedback database %s are lost: it was unavailable until the app stopped"
                      " (%s).", len(self._queue), self.where, self._problem)
        if self.db is not None:
            self.db.dispose()

    # -- writing -----------------------------------------------------------------------------------
    def log_interaction(self, *, session_id: str, question: str, language: str, provider: str | None, kind: str,
                        entry_id: str | None, topic: str | None, answered: bool, score: float | None,
                        offered: Sequence[Any] = ()) -> int:
        """Record one question and what the assistant did with it; returns the interaction id.

        `offered`: the answer's hits (or (entry_id, score) pairs), best first; the first OFFERED_KEPT are kept,
        for the operator's inbox. While the database is away the id is a stand-in (negative) that
        `log_feedback` and `report_mistake` accept as well."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if bool(answered) != (kind not in UNANSWERED):
            raise ValueError(f"answered={answered!r} contradicts kind {kind!r}: answered means anything but "
                             f"{', '.join(sorted(UNANSWERED))} (Answer.answered)")
        # numbers.Real, not float: the ranker's scores may be numpy float32.
        if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)
                                  or not math.isfinite(score)):
            raise ValueError(f"score must be a finite number or None, got {score!r}")
        offered_json, margin = _offered(offered)
        # Masked here as well as in the assistant: a caller that forgets must not put a card number on disk.
        values = {"asked_at": self._now(), "session_id": storable(str(session_id)),
                  "question": _clean(question, "question") or "", "language": str(language), "provider": provider,
                  "kind": str(kind), "entry_id": entry_id, "topic": topic, "answered": int(bool(answered)),
                  "score": None if score is None else float(score), "write_key": uuid.uuid4().hex,
                  "offered": offered_json, "margin": margin}
        write = _Write("interaction", values)
        done, interaction_id = self._try_now(write)
        if done:
            return interaction_id
        with self._lock:
            self._next_ref -= 1
            write.ref = self._next_ref
            self._resolved[write.ref] = None
        self._enqueue(write)
        return write.ref

    def log_feedback(self, *, interaction_id: int, rating: int, comment: str | None = None) -> None:
        """Record 👍 (1) or 👎 (0) for an interaction; a second call for the same one replaces the first."""
        if isinstance(rating, bool) or not isinstance(rating, int) or rating not in (0, 1):
            raise ValueError(f"rating must be 1 (👍) or 0 (👎), got {rating!r}")
        comment = (_clean(comment, "comment") or "").strip() or None
        self._submit(_Write("feedback", {"interaction_id": _whole_number(interaction_id, "interaction_id"),
                                         "rating": rating, "comment": comment, "rated_at": self._now()}))

    def clear_feedback(self, *, interaction_id: int) -> None:
        """Undo a 👍/👎 (and its comment): the user clicked the same thumb again."""
        self._submit(_Write("clear", {"interaction_id": _whole_number(interaction_id, "interaction_id")}))

    def report_mistake(self, *, session_id: str, entry_id: str, text: str, interaction_id: int | None = None) -> str:
        """Keep "Report a mistake" on an answer: the entry it showed (`entry_id`) and what is wrong (`text`,
        masked and cut like a comment). It lands in the operator's inbox under the entry. Returns the text
        kept, as the operator will read it."""
        if not isinstance(entry_id, str) or not entry_id.strip():
            raise ValueError(f"entry_id must name the entry the answer showed, got {entry_id!r}")
        cleaned = (_clean(text, "text") or "").strip()
        if not cleaned:
            raise ValueError("a report needs a few words saying what is wrong")
        values = {"reported_at": self._now(), "session_id": storable(str(session_id)),
                  "interaction_id": None if interaction_id is None else _whole_number(interaction_id, "interaction_id"),
                  "entry_id": entry_id.strip(), "text": cleaned, "action_id": None, "write_key": uuid.uuid4().hex}
        self._submit(_Write("report", values))
        return cleaned

    def record_action(self, *, actor: str, action: str, group_id: str, questions: Sequence[str],
                      entry_id: str | None = None, file: str | None = None, effect: dict | None = None,
                      interactions: Iterable[int] = (), reports: Iterable[int] = ()) -> int:
        """Record what an operator did about an inbox group or reported mistakes, now (not queued: the operator
        must know it was kept); the listed interactions and reports leave the inbox. Returns the action's id.
        Raises StoreUnavailable when the database cannot be written."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        actor = storable(mask_secrets(str(actor or "")).text.strip())[:MAX_ACTOR_CHARS]
        if not actor:
            raise ValueError("actor must say who acted (a name), got nothing")
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"group_id must be the inbox group's id, got {group_id!r}")
        masked = [_clean(q, "question") for q in questions]
        values = {"acted_at": self._now(), "actor": actor, "action": action, "group_id": storable(group_id),
                  "entry_id": entry_id, "questions": json.dumps(masked, ensure_ascii=False), "file": file,
                  "effect": None if effect is None else storable(mask_secrets(json.dumps(effect)).text),
                  "interactions": [_whole_number(i, "interaction id") for i in interactions if i > 0],
                  "reports": [_whole_number(r, "report id") for r in reports]}
        if self._needs_open:
            self.flush()
            if self._needs_open:
                raise StoreUnavailable(self._problem or f"The feedback database {self.where} is not open.")
        return self.db.run(lambda conn: _insert_action(conn, dict(values)), write=True)

    def save_conversation(self, conversation_id: str, data: dict) -> None:
        """Keep a conversation's state (a JSON-serialisable dict) under its id, replacing the last copy.

        Text in it is masked again here, so a card number typed into the page never reaches the disk."""
        conversation_id = _conversation_id(conversation_id)
        payload = storable(mask_secrets(json.dumps(data, ensure_ascii=False)).text)
        self._submit(_Write("conversation", {"id": conversation_id, "updated_at": self._now(), "data": payload},
                            key=conversation_id))

    def load_conversation(self, conversation_id: str) -> dict | None:
        """The state last saved under `conversation_id`, or None when there is none (or it cannot be read)."""
        try:
            conversation_id = _conversation_id(conversation_id)
        except ValueError:
            return None
        with self._lock:
            waiting = [w for w in self._queue if w.what == "conversation" and w.key == conversation_id]
        if waiting:
            payload = waiting[-1].values["data"]
        else:
            try:
                payload = self.read(select(conversations.c.data).where(conversations.c.id == conversation_id))
            except StoreUnavailable:
                return None
            if not payload:
                return None
            payload = payload[0][0]
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- reading -----------------------------------------------------------------------------------
    def read(self, statement: Executable) -> list:
        """The rows of one query (see queries.py); raises StoreUnavailable when the database cannot be read."""
        if self._needs_open:
            self.flush()
            if self._needs_open:
                raise StoreUnavailable(self._problem or f"The feedback database {self.where} is not open.")
        return self.db.run(lambda conn: conn.execute(statement).all(), write=False)

    # -- the queue ---------------------------------------------------------------------------------
    def flush(self) -> int:
        """Try once to write everything waiting (opening the database first if it never opened); returns how
        many writes still wait. The background writer calls this; tests and `close` may too."""
        with self._flushing:
            try:
                if self._needs_open:
                    self._open(budget=0)
                while True:
                    with self._lock:
                        if not self._queue:
                            break
                        write = self._queue[0]
                    try:
                        self._apply(write, budget=0)
                    except ValueError as e:  # e.g. a rating for a question the database no longer has
                        log.warning("A waiting write to the feedback database was dropped: %s", e)
                    with self._lock:
                        if self._queue and self._queue[0] is write:
                            self._queue.popleft()
            except StoreError as e:
                self._went_down(e)
                return len(self._queue)
        with self._lock:
            if self._problem is not None:
                log.warning("The feedback database %s is back; everything that waited is saved.", self.where)
            self._problem = None
            self._retry_in = RETRY_EVERY_S
        return len(self._queue)

    def _submit(self, write: _Write) -> None:
        interaction_id = write.values.get("interaction_id")
        if interaction_id is not None and interaction_id < 0:
            with self._lock:
                if interaction_id not in self._resolved and -interaction_id > -self._next_ref:
                    raise ValueError(f"unknown interaction_id {interaction_id}: log_interaction returns the ids"
                                     " to use")
                real = self._resolved.get(interaction_id)
            if real == DROPPED and write.what == "report":
                real = write.values["interaction_id"] = None  # kept without the question it was about
            elif real == DROPPED:
                with self._lock:
                    self.dropped += 1
                return
            if real is None and write.values["interaction_id"] is not None:  # still waiting: wait behind it
                write.ref = interaction_id
                self._enqueue(write)
                return
            write.values["interaction_id"] = real
        done, _ = self._try_now(write)
        if not done:
            self._enqueue(write)

    def _try_now(self, write: _Write) -> tuple[bool, Any]:
        """Write at once if nothing waits and the database is there: (done, what the write returned)."""
        with self._lock:
            if self._queue or self._problem is not None or self._needs_open:
                return False, None
        try:
            return True, self._apply(write, budget=RETRY_FOR_S)
        except StoreUnavailable as e:
            self._went_down(e)
            return False, None

    def _apply(self, write: _Write, budget: float) -> Any:
        values = write.values
        if write.ref is not None and write.what != "interaction":
            with self._lock:
                real = self._resolved.get(write.ref)
            if not real and write.what == "report":
                real = None  # the question was dropped; the report is kept without it
            elif not real:
                raise ValueError(f"the question it belongs to (stand-in id {write.ref}) was dropped")
            values = {**values, "interaction_id": real}
        result = self.db.run(lambda conn: STATEMENTS[write.what](conn, values), write=True, budget=budget)
        if write.what == "interaction" and write.ref is not None:
            with self._lock:
                self._resolved[write.ref] = result
                while len(self._resolved) > 10 * MAX_QUEUED:  # remember the recent stand-ins, not all
                    self._resolved.popitem(last=False)
        return result

    def _enqueue(self, write: _Write) -> None:
        with self._lock:
            if write.key:
                for waiting in list(self._queue):
                    if waiting.what == write.what and waiting.key == write.key:
                        self._queue.remove(waiting)
            self._queue.append(write)
            while len(self._queue) > MAX_QUEUED:
                oldest = self._queue.popleft()
                if oldest.what == "interaction":
                    self._resolved[oldest.ref] = DROPPED  # its rating, if one comes, is dropped with it
                self.dropped += 1
                if self.dropped % 100 == 1:
                    log.error("The feedback database %s has been unavailable for %d writes; the oldest waiting"
                              " writes are dropped (%d so far).", self.where, MAX_QUEUED, self.dropped)
        self._start_writer()

    def _went_down(self, error: StoreError) -> None:
        with self._lock:
            first = self._problem is None
            self._problem = str(error)
            if getattr(error, "damaged", False):
                self._needs_open = True  # opening again moves the damaged file aside
        if first:
            log.error("%s Questions and ratings wait in memory (up to %d) and are written when it is back.",
                      error, MAX_QUEUED)
        self._start_writer()

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._write_in_background, name="feedback-writer",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _write_in_background(self) -> None:
        while not self._closed:
            if self._problem is not None or self._needs_open:
                self._stopping.wait(timeout=self._retry_in)  # while away: try again after a growing pause
            else:
                self._wake.wait()  # while all is well: only when a write was queued in a race
                self._wake.clear()
            if self._closed:
                return
            self.flush()
            with self._lock:
                if self._problem is not None:
                    self._retry_in = min(self._retry_in * 2, RETRY_MAX_S)

    def _open(self, budget: float = OPEN_FOR_S) -> None:
        if self.db is None:
            raise StoreUnavailable(self._problem or "The feedback database cannot be used.")
        moved = self.db.open(budget)
        if moved is not None:
            self.recovered_from = moved
        self._needs_open = False

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds")


_stores: dict[str, FeedbackStore] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> FeedbackStore:
    """The one store of this process for the configured database: both pages (and the API) share it.

    ASSISTANT_DATABASE_URL (postgresql://...) when set, else the SQLite file ASSISTANT_FEEDBACK_DB."""
    where = settings.database_url or str(Path(settings.feedback_db).absolute())
    with _stores_lock:
        store = _stores.get(where)
        if store is None:
            store = _stores[where] = FeedbackStore(where if settings.database_url else Path(where))
        return store
