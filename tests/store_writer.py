"""A process that writes `count` questions, each rated, to the store at `where`: for the two-writer tests.

    python tests/store_writer.py WHERE NAME COUNT [--ready FILE]

Questions are "NAME question N" under session NAME, rated N % 2. Writes that wait while the database is away
(a server restart) are flushed before exiting; it exits 1 if any was dropped or still waits after 120 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from retrieval.settings import ROOT
from retrieval.store.feedback import FeedbackStore


def start_writers(where: Path | str, count: int, names: tuple[str, ...] = ("a", "b")) -> list[subprocess.Popen]:
    """One writer process per name, started at once; their output is on .stdout (text)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return [subprocess.Popen([sys.executable, __file__, str(where), name, str(count)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in names]


def main(where: str, name: str, count: int) -> int:
    store = FeedbackStore(where if "://" in where else Path(where))
    waited = 0
    for n in range(count):
        interaction = store.log_interaction(session_id=name, question=f"{name} question {n}", language="en",
                                            provider="tello", kind="answer", entry_id="tello.topup_steps",
                                            topic="topup_steps", answered=True, score=0.5)
        waited += interaction < 0
        store.log_feedback(interaction_id=interaction, rating=n % 2)
        if n == count // 10:
            print("written", flush=True)  # the restart test waits for this before restarting the server
    deadline = time.monotonic() + 120
    while store.flush() and time.monotonic() < deadline:
        time.sleep(0.2)
    left, dropped, retries = store.queued, store.dropped, store.db.retries
    store.close()
    print(f"{name}: {count} questions, {retries} transactions retried, {waited} waited in memory, {left} still"
          f" waiting, {dropped} dropped", flush=True)
    return 1 if left or dropped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
