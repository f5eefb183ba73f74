"""Fixtures for the store's tests on a real PostgreSQL server: Debian's, started by deploy/postgres.sh.

A test module uses them with `pytest_plugins = ["conftest_postgres"]`. One server serves the whole session
(on a free port, in a temporary folder); each test gets an empty schema of its own, dropped afterwards. A test
that stops or restarts the server takes a server of its own (`own_postgres`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from retrieval.measure.browser import free_port
from retrieval.settings import ROOT

SCRIPT = ROOT / "deploy" / "postgres.sh"


@dataclass
class PostgresServer:
    folder: Path
    url: str  # the `assistant` database, as its owner

    def start(self) -> None:
        _script("start", str(self.folder))

    def stop(self, mode: str = "fast") -> None:
        _script("stop", str(self.folder), mode)

    def new_database(self) -> str:
        """The URL of a fresh, empty place on this server: a schema of its own, first on the search path.

        (A schema, not a database: CREATE DATABASE takes a second, and the suite would spend minutes on it.)"""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return make_url(self.url).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).query["options"].split("=", 1)[1]
        with contextlib.suppress(psycopg.OperationalError), psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _script(*args: str) -> str:
    done = subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"deploy/postgres.sh {' '.join(args[:1])} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout.strip()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A new server in a temporary folder (which the `postgres` user may own when we are root)."""
    folder = Path(tempfile.mkdtemp(prefix="store-pg-"))
    try:
        url = _script("start", str(folder), str(free_port()))
        server = PostgresServer(folder, url)
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server for this test alone: it may be stopped and restarted."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres) -> Iterator[str]:
    url = postgres.new_database()
    yield url
    postgres.drop_database(url)
