"""A rebuild that stops at a chosen moment, for test_faults to kill there.

    python tests/slow_build.py KB_DIR INDEX_DIR MOMENT MARKER

Builds an index of KB_DIR with a slowed-down HashingEmbedder and saves it into INDEX_DIR. On
reaching MOMENT it writes MARKER and sleeps until killed; MOMENT "none" builds and saves at full
speed and exits (the first index).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
from pathlib import Path

import retrieval.build.index as index_module
from retrieval.build.index import build_index, save_index
from retrieval.knowledge import load_knowledge
from retrieval.serving.embedder import HashingEmbedder

# In the order they happen during save_index.
MOMENTS = {
    "embedding": "vectors being computed",
    "staging": "the .building- folder made, nothing in it yet",
    "meta-half": "meta.json half written",
    "hashing": "index.faiss and meta.json written, no manifest yet",
    "rename": "the folder complete, not yet renamed to idx-",
    "switch": "idx- folder and .CURRENT.tmp in place, CURRENT not yet replaced",
    "cleanup": "CURRENT switched, the previous index not yet removed",
}
BATCH_DELAY_S = 0.05


class SlowEmbedder(HashingEmbedder):
    """The test embedder (same name and vectors), calling `on_batch` before each batch."""

    def __init__(self, on_batch):
        super().__init__()
        self.on_batch = on_batch

    def embed_queries(self, texts):
        self.on_batch()
        return super().embed_queries(texts)

    def embed_passages(self, texts):
        self.on_batch()
        return super().embed_passages(texts)


def pause(moment: str, marker: Path) -> None:
    marker.write_text(moment, encoding="utf-8")
    time.sleep(3600)


def stop_at(moment: str, marker: Path) -> None:
    """Patch save_index's steps so that the process reaches `moment`, says so in `marker`, and waits."""

    def before(function):
        def paused(*args, **kwargs):
            pause(moment, marker)
            return function(*args, **kwargs)
        return paused

    if moment == "staging":
        index_module._write = before(index_module._write)
    elif moment == "hashing":
        index_module._sha256 = before(index_module._sha256)
    elif moment == "rename":
        os.rename = before(os.rename)
    elif moment == "switch":
        os.replace = before(os.replace)
    elif moment == "cleanup":
        index_module._remove_old = before(index_module._remove_old)
    elif moment == "meta-half":
        write_text = pathlib.Path.write_text

        def half_then_pause(self, data, encoding=None, errors=None, newline=None):
            if self.name != "meta.json":
                return write_text(self, data, encoding=encoding, errors=errors, newline=newline)
            raw = data.encode(encoding or "utf-8")
            with open(self, "wb") as f:
                f.write(raw[: len(raw) // 2])
                f.flush()
                os.fsync(f.fileno())
            pause(moment, marker)

        pathlib.Path.write_text = half_then_pause


def main(kb_dir: str, index_dir: str, moment: str, marker: str) -> None:
    kb = load_knowledge(Path(kb_dir))
    if moment == "none":
        save_index(build_index(kb, HashingEmbedder()), Path(index_dir))
        return
    if moment not in MOMENTS:
        raise SystemExit(f"unknown moment {moment!r}; use one of {', '.join(MOMENTS)} or none")

    def on_batch() -> None:
        time.sleep(BATCH_DELAY_S)
        if moment == "embedding":
            pause(moment, Path(marker))

    stop_at(moment, Path(marker))
    save_index(build_index(kb, SlowEmbedder(on_batch)), Path(index_dir))
    raise SystemExit(f"the build finished without stopping at {moment!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
