"""Database: a connection pool to SQLite or PostgreSQL, its migrations, and what its errors mean.

Everything that differs between the two lives here: opening (a file created 0600, damage moved aside,
WAL; or a server URL), taking the write lock, the schema version's bookkeeping, and telling a passing
problem (a lock, a restarting server) from one that lasts (read-only, full, gone) or from a bug.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from retrieval.store.schema import SCHEMA_VERSION, migration

__all__ = ["Database", "Location", "StoreError", "StoreUnavailable", "locate"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's own busy handler waits this long for a lock; the retry loop covers the rarer SQLITE_BUSY that
# the handler cannot wait out (WAL recovery after a crash), and a PostgreSQL server that is restarting.
BUSY_TIMEOUT_S = 5.0
RETRY_FOR_S = 15.0
# Opening waits less: the page must come up even when the database does not, and the store keeps trying.
OPEN_FOR_S = 3.0
CONNECT_TIMEOUT_S = 5
# Held for the whole migration, so two processes starting at once do not both migrate.
PG_MIGRATION_LOCK = 0x70707570
DAMAGED = ".corrupt-"


class StoreError(Exception):
    """The store could not be used; the message says what to do."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written just now: locked, read-only, full, down, damaged."""

    def __init__(self, message: str, *, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged  # opening it again moves the damaged file aside


class Problem(Enum):
    PASSING = "passing"   # a lock, a lost connection, a server restarting: try again in a moment
    LASTING = "lasting"   # read-only, full disk, cannot open, server gone: give up for now, retry later
    DAMAGED = "damaged"   # the SQLite file is corrupt: move it aside when opening again


@dataclass(frozen=True)
class Location:
    """Where the database is: a SQLite file (`path`) or a server (`url`), and how to name it in messages."""

    url: URL
    path: Path | None
    shown: str

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()


def locate(where: Path | str) -> Location:
    """A file path means SQLite; `postgresql://...` a PostgreSQL server (the password is never shown).

    >>> locate("postgresql://app:secret@db.example/help").shown
    'postgresql://app:***@db.example/help'
    >>> locate("var/feedback.sqlite3").dialect
    'sqlite'
    """
    if isinstance(where, str) and "://" in where:
        try:
            url = make_url(where)
        except ArgumentError as e:
            raise ValueError(f"not a database URL: {e}") from e
        backend = url.get_backend_name()
        if backend in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
            return Location(url, None, url.set(drivername="postgresql").render_as_string(hide_password=True))
        if backend == "sqlite" and url.database:
            where = url.database
        else:
            raise ValueError(f"ASSISTANT_DATABASE_URL must start with postgresql:// (or be unset for SQLite),"
                             f" got {url.render_as_string(hide_password=True)!r}")
    path = Path(where)
    return Location(URL.create("sqlite", database=str(path)), path, str(path))


def classify(error: BaseException) -> Problem | None:
    """What kind of problem `error` is, or None when it is a bug that must not be hidden."""
    if isinstance(error, PoolTimeout):
        return Problem.PASSING
    if isinstance(error, OSError):
        return Problem.LASTING
    if isinstance(error, sqlite3.Error):
        return _sqlite_problem(error)
    if not isinstance(error, DBAPIError):
        return None
    if isinstance(error.orig, sqlite3.Error):
        return _sqlite_problem(error.orig)
    state = getattr(error.orig, "sqlstate", None) or ""
    if state in ("40001", "40P01", "55P03", "57P03"):  # serialisation, deadlock, lock, "starting up"
        return Problem.PASSING
    if state[:2] in ("53", "58") or state == "25006":  # out of disk or memory, I/O error, read-only
        return Problem.LASTING
    # The connection went (refused, closed, the server shutting down): it may be restarting, so retried.
    if error.connection_invalidated or state[:2] in ("08", "57") or (
            not state and isinstance(error, (OperationalError, InterfaceError))):
        return Problem.PASSING
    return None


def _sqlite_problem(error: sqlite3.Error) -> Problem | None:
    # Extended result codes (SQLITE_BUSY_RECOVERY, ...) keep the primary code in the low byte.
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error):
        return Problem.PASSING
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return Problem.DAMAGED
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR,
                sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_AUTH):
        return Problem.LASTING
    return None  # SQLITE_ERROR and friends: a statement that is wrong


class Database:
    """One database, opened lazily; `run` does one transaction, retrying what passes."""

    def __init__(self, location: Location, clock: Callable[[], datetime]):
        self.location = location
        self.clock = clock
        self.engine = self._engine()
        self.retries = 0  # transactions tried again after a passing problem (a lock, a lost connection)

    @property
    def dialect(self) -> str:
        return self.location.dialect

    @property
    def shown(self) -> str:
        return self.location.shown

    def dispose(self) -> None:
        self.engine.dispose()

    # -- opening --------------------------------------------------------------------------------
    def open(self, budget: float = OPEN_FOR_S) -> Path | None:
        """Make the database ready to use: returns where a damaged SQLite file was moved, if it was."""
        moved = None
        if self.location.path is not None:
            self._prepare_file(self.location.path)
            problem = self._retry(self._integrity_problem, budget)
            if problem is not None:
                moved = self._move_aside(problem)
                self.engine.dispose()  # connections still open on the old file must not be reused
                self._prepare_file(self.location.path)
        self._retry(self._migrate, budget)
        return moved

    def damaged_copies(self) -> list[Path]:
        """Damaged SQLite files moved aside beside the database (their journals not counted), oldest first."""
        path = self.location.path
        if path is None or not path.parent.is_dir():
            return []
        copies = [p for p in path.parent.glob(f"{path.name}{DAMAGED}*") if not p.name.endswith(("-wal", "-shm",
                                                                                             "-journal"))]
        return sorted(copies)

    def _prepare_file(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"Cannot create the folder for the feedback database {path}: {e}. "
                                   "Point ASSISTANT_FEEDBACK_DB at a writable location.") from e
        if path.is_dir():
            raise StoreUnavailable(f"The feedback database path {path} is a folder; "
                                   "point ASSISTANT_FEEDBACK_DB at a file inside it instead.")
        # What users typed is in here: only the owner may read it. SQLite gives its -wal and -shm files the
        # database file's permissions, so they follow.
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError as e:
            raise StoreUnavailable(f"The feedback database {path} cannot be opened for writing: {e}.") from e

    def _integrity_problem(self) -> str | None:
        """What is wrong with the file, or None when it is a healthy database (or a new, empty one)."""
        path = self.location.path
        if path.stat().st_size == 0:
            return None
        # Read-only: a writable connection would, on closing, fold a WAL into the damaged file or delete one it
        # cannot make sense of, and the evidence we promise to keep would be gone.
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            rows = probe.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as e:
            if _sqlite_problem(e) is Problem.DAMAGED:
                return str(e)
            raise  # busy: retried by the caller; anything else: reported as it is
        finally:
            probe.close()
        if rows == [("ok",)]:
            return None
        return "; ".join(str(row[0]) for row in rows[:5])

    def _move_aside(self, problem: str) -> Path:
        path = self.location.path
        stamp = self.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}{DAMAGED}{stamp}")
        n = 1
        while target.exists():  # two recoveries within a second: keep both, never overwrite
            target = path.with_name(f"{path.name}{DAMAGED}{stamp}-{n}")
            n += 1
        try:
            path.rename(target)
            # A journal or WAL left beside the broken file belongs to it; replayed onto the fresh database it
            # would bring the damage back, so it travels along under the matching name.
            for suffix in ("-wal", "-shm", "-journal"):
                sidecar = path.with_name(path.name + suffix)
                if sidecar.exists():
                    sidecar.rename(target.with_name(target.name + suffix))
        except OSError as e:
            raise StoreUnavailable(f"The feedback database {path} is damaged ({problem}) and could not be moved"
                                   f" aside: {e}. Move it away by hand.") from e
        log.warning("The feedback database %s was damaged (%s); moved it to %s and started a fresh one.",
                    path, problem, target)
        return target

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # Outside any transaction (SQLite refuses inside one); persistent in the file.
                conn.connection.driver_connection.execute("PRAGMA journal_mode = WAL")
            conn.execution_options(write=True)
            with conn.begin():
                version = self._version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(f"The feedback database {self.shown} has schema version {version}, newer"
                                     f" than this app's {SCHEMA_VERSION}; update the app or point the store at"
                                     " another database.")
                for step in range(version, SCHEMA_VERSION):
                    for statement in migration(step, self.dialect):
                        conn.exec_driver_sql(statement)
                # Written even when unchanged: a database that takes no writes (read-only, full) says so now,
                # when the store opens, rather than at the first question.
                self._set_version(conn, SCHEMA_VERSION)

    def _version(self, conn: Connection) -> int:
        # SQLite keeps it in the file's header; PostgreSQL in a table of one row. The migration lock makes a
        # second process wait here until the first has finished, then read the new version.
        if self.dialect == "sqlite":
            return conn.exec_driver_sql("PRAGMA user_version").scalar_one()
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        return conn.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_version").scalar_one()

    def _set_version(self, conn: Connection, version: int) -> None:
        if self.dialect == "sqlite":
            conn.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
        else:
            conn.exec_driver_sql("DELETE FROM schema_version")
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})

    # -- working ----------------------------------------------------------------------------------
    def run(self, work: Callable[[Connection], T], *, write: bool, budget: float = RETRY_FOR_S) -> T:
        """`work` in one transaction (a write takes the write lock up front); passing problems are retried for
        `budget` seconds. Raises StoreUnavailable for what does not pass; bugs propagate as they are."""
        def attempt() -> T:
            with self.engine.connect() as conn:
                conn.execution_options(write=write)
                with conn.begin():
                    return work(conn)

        return self._retry(attempt, budget)

    def _retry(self, operation: Callable[[], T], budget: float) -> T:
        deadline = time.monotonic() + budget
        delay = 0.01
        while True:
            try:
                return operation()
            except (DBAPIError, PoolTimeout, OSError, sqlite3.Error) as e:
                problem = classify(e)
                if problem is None:
                    raise
                if problem is Problem.PASSING and time.monotonic() < deadline:
                    self.retries += 1
                    time.sleep(delay * (1 + random.random()))  # jitter, so waiting threads do not retry in step
                    delay = min(delay * 2, 0.5)
                    continue
                # Connections opened while the file was read-only (or the server was another) keep that view:
                # the next try starts with new ones.
                self.engine.dispose()
                raise StoreUnavailable(self._explain(problem, e, budget), damaged=problem is Problem.DAMAGED) from e

    def _explain(self, problem: Problem, error: BaseException, budget: float) -> str:
        cause = getattr(error, "orig", None) or error
        cause = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if problem is Problem.DAMAGED:
            return (f"The feedback database {self.shown} is damaged ({cause}); it is moved aside and a fresh one"
                    " started when the store opens it again.")
        if problem is Problem.PASSING and self.dialect == "sqlite":
            return (f"The feedback database {self.shown} stayed locked for {budget:.0f}s; another program may be"
                    " holding it open.")
        return f"The feedback database {self.shown} could not be used: {cause}."

    def _engine(self) -> Engine:
        if self.dialect == "sqlite":
            engine = create_engine(self.location.url, connect_args={"timeout": BUSY_TIMEOUT_S,
                                                                    "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def setup(dbapi_connection, _record) -> None:
                # We issue BEGIN ourselves (below), so a write takes its lock up front (IMMEDIATE) instead of
                # upgrading a read lock halfway, which SQLite cannot wait for and fails at once.
                dbapi_connection.isolation_level = None
                dbapi_connection.execute("PRAGMA foreign_keys = ON")
                # Safe with WAL: a power cut may lose the last commits, never corrupt the file.
                dbapi_connection.execute("PRAGMA synchronous = NORMAL")

            @event.listens_for(engine, "begin")
            def begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

            return engine
        # pre_ping: a connection left from before a server restart is noticed and replaced before use.
        return create_engine(self.location.url, pool_pre_ping=True, pool_timeout=RETRY_FOR_S,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
