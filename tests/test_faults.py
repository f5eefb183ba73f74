"""Faults: a build killed part-way, a disk that fills up, a feedback database that cannot be written."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from slow_build import MOMENTS
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
from retrieval.store.feedback import FeedbackError, FeedbackStore

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
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_build_killed_part_way_leaves_a_whole_index_to_serve(first, tmp_path, moment):
    kb_dir, index_dir = tmp_path / "knowledge", tmp_path / "index"
    shutil.copytree(first.kb_dir, kb_dir)
    shutil.copytree(first.index_dir, index_dir)
    marker, log = tmp_path / "stopped", tmp_path / "build.log"
    proc = run_build(kb_dir, index_dir, moment, marker, log)
    try:
        deadline = time.monotonic() + 60
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


# -- a feedback database that cannot be written -------------------------------------------------
def test_a_feedback_folder_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "feedback" / "fb.sqlite3"
    with pytest.raises(FeedbackError) as info:
        FeedbackStore(path)
    assert str(path) in str(info.value) and "ASSISTANT_FEEDBACK_DB" in str(info.value)
    assert blocker.read_text() == "not a folder"


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


def log_one(store: FeedbackStore) -> int:
    return store.log_interaction(session_id="s", question="gv top up", language="en", provider=None,
                                 kind="decline", entry_id=None, topic=None, answered=False, score=None)


def test_a_read_only_feedback_database_is_named_when_opened(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    log_one(store)
    store.close()
    make_read_only(path)
    with pytest.raises((FeedbackError, OSError)) as info:
        FeedbackStore(path)
    assert str(path) in str(info.value) and "readonly" in str(info.value).replace("read-only", "readonly")
    assert list(tmp_path.glob("*.corrupt-*")) == [], "a read-only database is not a damaged one"


def test_a_feedback_database_made_read_only_while_open_is_named_on_write(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    log_one(store)
    make_read_only(path)
    with pytest.raises((FeedbackError, OSError)) as info:
        log_one(store)
    assert str(path) in str(info.value) and "readonly" in str(info.value).replace("read-only", "readonly")
    store.close()
