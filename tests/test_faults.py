"""Faults: a build killed part-way, a disk that fills up, a store whose database cannot be written."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from slow_build import MOMENTS
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from store_writer import start_writers
from timing import TooSlow, within

import retrieval.build.index as index_module
from retrieval.build.index import (
    BUILDING,
    CURRENT,
    PREFIX,
    IndexStoreError,
    build_index,
    load_index,
    load_or_build,
    save_index,
)
from retrieval.knowledge import SPECIAL_FILES, load_knowledge
from retrieval.serving.embedder import HashingEmbedder
from retrieval.settings import ROOT
from retrieval.store import database as database_module
from retrieval.store import feedback as feedback_module
from retrieval.store.database import locate
from retrieval.store.feedback import FeedbackStore

pytest_plugins = ["conftest_postgres"]  # own_postgres: a PostgreSQL server that may be stopped

HELPER = Path(__file__).with_name("slow_build.py")
QUERIES = ["gv top up", "Tello怎么充值", "my card was declined"]


def run_build(kb_dir: Path, index_dir: Path, moment: str, marker: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, str(HELPER), str(kb_dir), str(index_dir), moment, str(marker)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def searches(index) -> list:
    vectors = HashingEmbedder().embed_queries(QUERIES)
    return index.vectors.search(vectors, 5)


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def edit(kb_dir: Path) -> None:
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("tello renew", "tello renewal"), encoding="utf-8")


@dataclass(frozen=True)
class FirstIndex:
    kb_dir: Path
    index_dir: Path
    manifest: dict
    searches: list


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> FirstIndex:
    """The tiny knowledge base and its index, built and saved by a process of its own."""
    base = tmp_path_factory.mktemp("faults")
    kb_dir, index_dir = base / "knowledge", base / "index"
    shutil.copytree(Path(__file__).parent / "fixtures" / "kb", kb_dir)
    for name in SPECIAL_FILES:
        shutil.copy(ROOT / "knowledge" / name, kb_dir / name)
    proc = run_build(kb_dir, index_dir, "none", base / "unused", base / "first.log")
    assert proc.wait(timeout=120) == 0, (base / "first.log").read_text()
    index = load_index(index_dir)
    return FirstIndex(kb_dir, index_dir, asdict(index.manifest), searches(index))


# -- a build killed part-way --------------------------------------------------------------------
# How long a background build may take to reach the moment it is killed at: it embeds and fits the whole
# knowledge base, which took just over 60 s once on two busy cores (CI, 3 December 2026). A safety net only:
# a build that ends early or hangs still fails the test.
BUILD_WAIT = 300

@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_build_killed_part_way_leaves_a_whole_index_to_serve(first, tmp_path, moment):
    kb_dir, index_dir = tmp_path / "knowledge", tmp_path / "index"
    shutil.copytree(first.kb_dir, kb_dir)
    shutil.copytree(first.index_dir, index_dir)
    marker, log = tmp_path / "stopped", tmp_path / "build.log"
    proc = run_build(kb_dir, index_dir, moment, marker, log)
    try:
        deadline = time.monotonic() + BUILD_WAIT
        while not marker.exists():
            assert proc.poll() is None, f"the build ended before {MOMENTS[moment]}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the build never reached {MOMENTS[moment]}:\n{log.read_text()}"
            time.sleep(0.02)
        at_kill = entries(index_dir)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # The kill landed where it was meant to: a folder half-way, or a pointer about to move.
    building = {n for n in at_kill if n.startswith(BUILDING)}
    assert bool(building) == (moment in ("staging", "meta-half", "hashing", "rename")), at_kill
    assert len({n for n in at_kill if n.startswith(PREFIX)}) == (2 if moment in ("switch", "cleanup") else 1)

    served = load_index(index_dir)
    if moment == "cleanup":  # the new index was already in place: a whole one, built from the same knowledge
        assert served.manifest.knowledge_digest == first.manifest["knowledge_digest"]
    else:
        assert asdict(served.manifest) == first.manifest
    assert searches(served) == first.searches

    # What the kill left behind neither breaks the next start nor makes it rebuild...
    said: list[str] = []
    again = load_or_build(load_knowledge(kb_dir), HashingEmbedder(), index_dir, progress=said.append)
    assert said == [] and asdict(again.manifest) == asdict(served.manifest)

    # ...and the next real rebuild starts clean and clears it away.
    edit(kb_dir)
    kb = load_knowledge(kb_dir)
    rebuilt = load_or_build(kb, HashingEmbedder(), index_dir, progress=said.append)
    assert any("knowledge base changed" in m for m in said), said
    assert rebuilt.manifest.knowledge_digest == kb.digest != first.manifest["knowledge_digest"]
    current = (index_dir / CURRENT).read_text(encoding="utf-8")
    assert entries(index_dir) == {CURRENT, current}
    assert any("renewal" in k.text for k in load_index(index_dir).keys)


# -- a disk that fills up -----------------------------------------------------------------------
@pytest.fixture
def saved(tiny_kb, embedder, tmp_path) -> tuple[Path, str, dict]:
    """An index folder holding one good index: (folder, CURRENT's content, the manifest)."""
    target = tmp_path / "index"
    save_index(build_index(tiny_kb, embedder), target)
    return target, (target / CURRENT).read_text(encoding="utf-8"), asdict(load_index(target).manifest)


def assert_untouched(target: Path, before: str, manifest: dict) -> None:
    assert (target / CURRENT).read_text(encoding="utf-8") == before
    assert asdict(load_index(target).manifest) == manifest
    assert entries(target) == {CURRENT, before}, "a half-written or unused copy was left on the full disk"


@pytest.mark.parametrize("name", ["meta.json", f".{CURRENT}.tmp"])
@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_disk_full_part_way_through_a_file_keeps_the_old_index(tiny_kb, embedder, saved, monkeypatch, name,
                                                                fraction):
    target, before, manifest = saved
    write_text = Path.write_text

    def filling_up(self, data, encoding=None, errors=None, newline=None):
        if self.name != name:
            return write_text(self, data, encoding=encoding, errors=errors, newline=newline)
        raw = data.encode(encoding or "utf-8")
        with open(self, "wb") as f:
            f.write(raw[: int(len(raw) * fraction)])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", filling_up)
    with pytest.raises(IndexStoreError, match="previous index was left as it was") as info:
        save_index(build_index(tiny_kb, embedder), target)
    monkeypatch.undo()
    assert str(target) in str(info.value) and "No space left" in str(info.value)
    assert_untouched(target, before, manifest)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's always-full device /dev/full")
def test_disk_full_while_writing_the_vectors_keeps_the_old_index(tiny_kb, embedder, saved, monkeypatch):
    """index.faiss goes to /dev/full, so the real writer meets a real ENOSPC, whatever library writes it."""
    target, before, manifest = saved
    mkdtemp = tempfile.mkdtemp

    def staging_on_a_full_disk(*args, **kwargs):
        folder = mkdtemp(*args, **kwargs)
        if Path(folder).name.startswith(BUILDING):
            os.symlink("/dev/full", Path(folder) / "index.faiss")
        return folder

    monkeypatch.setattr(index_module.tempfile, "mkdtemp", staging_on_a_full_disk)
    try:
        with within(20), pytest.raises(IndexStoreError, match="previous index was left as it was"):
            save_index(build_index(tiny_kb, embedder), target)
    except TooSlow:  # an unnoticed failed write, then hashing /dev/full's endless zeros
        pytest.fail("the failed write of index.faiss went unnoticed")
    monkeypatch.undo()
    assert_untouched(target, before, manifest)


# -- a store whose database cannot be written ----------------------------------------------------
# Nothing the store does raises for these: the question waits in memory (at most MAX_QUEUED writes), the store
# says why in `problem`, and a background writer saves what waited once the database is back.
def log_one(store: FeedbackStore, question: str = "gv top up") -> int:
    return store.log_interaction(session_id="s", question=question, language="en", provider=None,
                                 kind="decline", entry_id=None, topic=None, answered=False, score=None)


def stored(where: Path | str) -> list[tuple]:
    """(question, rating) of every row, read past the store."""
    engine = create_engine(locate(where).url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT i.question, f.rating FROM interactions i LEFT JOIN feedback f ON f.interaction_id = i.id"
                " ORDER BY i.id"))]
    finally:
        engine.dispose()


def eventually(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def quick_retries(monkeypatch):
    """The background writer retries every 50 ms, and a lock is given up after 0.3 s instead of 15 s."""
    monkeypatch.setattr(feedback_module, "RETRY_EVERY_S", 0.05)
    monkeypatch.setattr(feedback_module, "RETRY_MAX_S", 0.2)
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(feedback_module, "RETRY_FOR_S", 0.3)


def make_read_only(path: Path) -> None:
    """Mark the database read-only in its own header (write version 3), which binds root as well.

    chmod would not: the tests run as root. See "file format version numbers" in SQLite's file format.
    """
    conn = sqlite3.connect(path)
    try:  # fold the WAL into the file, so that the header on disk is the one read
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        conn.close()
    with open(path, "r+b") as f:
        f.seek(18)
        f.write(bytes([3]))


def make_writable(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(18)
        f.write(bytes([2]))  # WAL, as the store sets it


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    """A real mount (tmpfs, or a read-only bind) at `target`: root can write through chmod, not through these."""
    target.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"needs root to mount ({done.stderr.strip()}); make test runs as root")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def test_a_folder_that_cannot_be_made_is_named_and_waited_for(tmp_path, quick_retries):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "feedback" / "fb.sqlite3"
    store = FeedbackStore(path)  # the page starts all the same
    assert str(path) in store.problem and "ASSISTANT_FEEDBACK_DB" in store.problem
    assert log_one(store) < 0 and store.queued == 1
    assert blocker.read_text() == "not a folder"

    blocker.unlink()  # the operator fixes it: the writer creates the database and saves what waited
    assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
    assert stored(path) == [("gv top up", None)]
    store.close()


def test_a_read_only_database_is_named_when_opened_and_written_when_it_is_writable_again(tmp_path, quick_retries):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    log_one(store, "before")
    store.close()
    make_read_only(path)
    store = FeedbackStore(path)
    assert str(path) in store.problem and "readonly" in store.problem.replace("read-only", "readonly")
    assert list(tmp_path.glob("*.corrupt-*")) == [], "a read-only database is not a damaged one"
    waiting = log_one(store, "while read-only")
    store.log_feedback(interaction_id=waiting, rating=1)
    make_writable(path)
    assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
    assert stored(path) == [("before", None), ("while read-only", 1)]
    store.close()


def test_a_database_made_read_only_while_open_keeps_the_questions_in_memory(tmp_path, quick_retries, caplog):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    first = log_one(store, "first")
    make_read_only(path)
    with caplog.at_level(logging.ERROR, logger="retrieval.store"):
        second = log_one(store, "second")  # no exception: the page shows its answer
        store.log_feedback(interaction_id=second, rating=0, comment="the stand-in id is accepted")
        store.log_feedback(interaction_id=first, rating=1)
        third = log_one(store, "third")
    assert first > 0 and second < 0 and third < 0 and second != third
    assert "readonly" in store.problem.replace("read-only", "readonly") and str(path) in store.problem
    assert store.queued == 4
    assert str(path) in caplog.text and "wait in memory" in caplog.text  # said once, for the operator's log

    make_writable(path)
    assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
    assert stored(path) == [("first", 1), ("second", 0), ("third", None)]
    store.save_conversation("c", {"step": 1})  # and all is as before
    assert store.load_conversation("c") == {"step": 1} and log_one(store) == 4
    store.close()


def test_a_read_only_data_folder(tmp_path, quick_retries):
    folder = tmp_path / "data"
    source = tmp_path / "source"
    source.mkdir()
    with mounted(folder, "--bind", str(source)):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        store = FeedbackStore(folder / "fb.sqlite3")
        assert str(folder / "fb.sqlite3") in store.problem and "Read-only file system" in store.problem
        assert log_one(store) < 0
        subprocess.run(["mount", "-o", "remount,bind,rw", str(folder)], check=True)
        assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
        assert stored(folder / "fb.sqlite3") == [("gv top up", None)]
        store.close()


def test_a_full_disk_keeps_the_questions_until_there_is_room(tmp_path, quick_retries):
    disk = tmp_path / "disk"
    with mounted(disk, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        path = disk / "fb.sqlite3"
        store = FeedbackStore(path)
        log_one(store, "fits")
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last page
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)
        waiting = [log_one(store, f"{n} " + "x" * 1500) for n in range(30)]  # more than the free pages
        assert all(i < 0 for i in waiting[-5:]), waiting
        assert "full" in store.problem and str(path) in store.problem
        filler.unlink()
        assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
        assert [q.split()[0] for q, _ in stored(path)] == ["fits", *map(str, range(30))]
        store.close()


def test_a_database_locked_for_too_long_keeps_the_question_in_memory(tmp_path, quick_retries):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # a backup, or an sqlite3 shell, holding the write lock
    try:
        started = time.monotonic()
        waiting = log_one(store, "asked while locked")
        assert waiting < 0 and time.monotonic() - started < 5
        assert "stayed locked" in store.problem
        assert log_one(store, "asked next") < 0 and store.queued == 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
    assert stored(path) == [("asked while locked", None), ("asked next", None)]
    store.close()


def test_at_most_max_queued_writes_wait_the_oldest_are_dropped_and_counted(tmp_path, quick_retries, monkeypatch):
    monkeypatch.setattr(feedback_module, "MAX_QUEUED", 5)
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    make_read_only(path)
    ids = [log_one(store, f"q{n}") for n in range(8)]
    assert store.queued == 5 and store.dropped == 3
    store.log_feedback(interaction_id=ids[0], rating=1)  # its question was dropped: so is the rating, quietly
    assert store.queued == 5 and store.dropped == 4
    make_writable(path)
    assert eventually(lambda: store.queued == 0 and store.problem is None), store.problem
    assert stored(path) == [(f"q{n}", None) for n in range(3, 8)]
    store.close()


def test_what_still_waits_when_the_app_stops_is_counted_as_lost(tmp_path, quick_retries, caplog):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    make_read_only(path)
    log_one(store)
    log_one(store)
    with caplog.at_level(logging.ERROR, logger="retrieval.store"):
        store.close()
    assert "2 writes to the feedback database" in caplog.text and "lost" in caplog.text


# -- a PostgreSQL server that goes away --------------------------------------------------------------
def test_a_server_down_at_start_is_named_without_its_password_and_waited_for(own_postgres, quick_retries):
    own_postgres.stop()
    store = FeedbackStore(own_postgres.url)
    password = make_url(own_postgres.url).password
    assert store.problem and "127.0.0.1" in store.problem and password not in store.problem
    assert log_one(store, "asked while down") < 0
    own_postgres.start()
    assert eventually(lambda: store.queued == 0 and store.problem is None, 60), store.problem
    assert stored(own_postgres.url) == [("asked while down", None)]
    store.close()


def test_a_server_stopped_while_in_use_keeps_the_questions_until_it_is_back(own_postgres, quick_retries):
    store = FeedbackStore(own_postgres.url)
    first = log_one(store, "first")
    own_postgres.stop("immediate")
    started = time.monotonic()
    second = log_one(store, "while down")
    store.log_feedback(interaction_id=second, rating=1)
    store.log_feedback(interaction_id=first, rating=0)
    assert first > 0 and second < 0 and time.monotonic() - started < 10
    own_postgres.start()
    assert eventually(lambda: store.queued == 0 and store.problem is None, 60), store.problem
    assert stored(own_postgres.url) == [("first", 0), ("while down", 1)]
    store.close()


def test_a_server_restart_mid_write_loses_nothing_and_duplicates_nothing(own_postgres, capsys):
    each = 600
    procs = start_writers(own_postgres.url, each)
    try:
        for proc in procs:  # both are writing...
            assert proc.stdout.readline().strip() == "written", proc.stdout.read()
        own_postgres.stop("immediate")  # ...when the server goes down as if it crashed, and comes back
        own_postgres.start()
        outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    rows = stored(own_postgres.url)
    questions = [q for q, _ in rows]
    assert len(questions) == len(set(questions)) == 2 * each
    assert sorted(questions) == sorted(f"{name} question {n}" for name in "ab" for n in range(each))
    assert all(rating == int(q.rsplit(" ", 1)[1]) % 2 for q, rating in rows)
    retried = [int(re.search(r"(\d+) transactions retried", out).group(1)) for out in outputs]
    assert sum(retried) > 0, outputs  # the restart did interrupt writes
    with capsys.disabled():
        print("\n" + " / ".join(o.strip().splitlines()[-1] for o in outputs))
