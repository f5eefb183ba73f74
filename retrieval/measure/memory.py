"""Memory: where a server's resident memory goes, read from /proc, after start and after 100 questions.

`server_memory()` starts the real servers (`streamlit run` through retrieval/measure/browser.py, `python -m
retrieval serve` through http_load.py), reads their memory once the assistant is loaded, asks 100 development
questions (Chromium sessions for the page, HTTP for the API: one client, then four at once) and reads it again.
`loading_steps()` loads the assistant piece by piece in a fresh process and reads its memory after each piece:
where the memory goes. `python -m retrieval.measure.memory` prints those steps as JSON.

Resident memory (VmRSS) is what the issue's target is about; it is split into anonymous memory (RssAnon: this
process's own) and mapped files (RssFile: libraries and the model's weights file, shared by every process on
the machine through the page cache, so a second replica costs about its anonymous memory); PSS shares each
mapped page among the processes that map it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from retrieval.settings import ROOT

QUESTIONS = 100
SESSION_LENGTH = 10      # page: the questions are asked in sessions of this many, one browser tab each
CONCURRENT_CLIENTS = 4   # API: as many as it answers at once
# What the replicas of deploy/ run with: no second compiled model, two malloc arenas instead of eight per core.
REPLICA_ENV = {"ASSISTANT_BUSY_MODEL": "0", "MALLOC_ARENA_MAX": "2"}
STEPS_TIMEOUT = 600.0
TARGET_MIB = 450.0       # the target for one replica

Say = Callable[[str], None]


@dataclass(frozen=True)
class Resident:
    """One reading of a process's memory, in MiB."""

    rss: float    # VmRSS: resident, all of it
    anon: float   # RssAnon: the process's own
    file: float   # RssFile: mapped files (libraries, the model's weights), shared through the page cache
    peak: float   # VmHWM: the highest VmRSS so far
    pss: float | None = None  # proportional: mapped pages divided among the processes mapping them

    def __str__(self) -> str:
        return f"{self.rss:.0f} MiB ({self.anon:.0f} anon + {self.file:.0f} file)"


def read(pid: int | str = "self") -> Resident:
    """The memory of process `pid` now, from /proc/<pid>/status and smaps_rollup."""
    pss = None
    with contextlib.suppress(OSError, ValueError, StopIteration):
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        pss = int(next(line for line in rollup if line.startswith("Pss:")).split()[1]) / 1024
    return _resident(_status(Path(f"/proc/{pid}/status").read_text()), pss)


def _status(text: str) -> dict[str, float]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _resident(fields: dict[str, float], pss: float | None = None) -> Resident:
    return Resident(fields["VmRSS"], fields["RssAnon"], fields["RssFile"] + fields.get("RssShmem", 0.0),
                    fields["VmHWM"], pss)


@dataclass(frozen=True)
class ServerMemory:
    """A server's memory once the assistant is loaded, and after each batch of questions."""

    server: str
    settings: str
    readings: tuple[tuple[str, Resident], ...]  # (what had happened, the reading), in order

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(f"{self.server}, {self.settings}: {when}", str(r), f"{r.pss:.0f} MiB" if r.pss else "—",
                 f"{r.peak:.0f} MiB") for when, r in self.readings]


def dev_questions(count: int = QUESTIONS) -> list[dict]:
    """The first `count` development questions that need no earlier context, as API requests."""
    from retrieval.measure.evaluate import load_dev_set

    return [{"question": q.q, "provider": None} for q in load_dev_set() if q.context is None][:count]


# -- the API ------------------------------------------------------------------------------------
def api_memory(requests: Sequence[dict], env: dict[str, str] | None = None, settings: str = "defaults",
               say: Say = print) -> ServerMemory:
    """`python -m retrieval serve`: loaded, after the questions from one client, after them again from four."""
    from retrieval.measure import http_load

    say(f"memory: `python -m retrieval serve` ({settings})")
    with http_load.api_server(env=env) as server:
        readings = [("after start", read(server.pid))]
        for clients in (1, CONCURRENT_CLIENTS):
            result = http_load.run_load(server, requests, clients)
            if result.answered != len(requests):
                raise RuntimeError(f"the API answered {result.answered} of {len(requests)}: {result.failures}")
            label = "one client" if clients == 1 else f"{clients} clients at once"
            readings.append((f"after {len(requests)} questions from {label}", read(server.pid)))
    return ServerMemory("`python -m retrieval serve`", settings, tuple(readings))


# -- the chat page --------------------------------------------------------------------------------
def page_memory(requests: Sequence[dict], env: dict[str, str] | None = None, settings: str = "defaults",
                say: Say = print, session_length: int = SESSION_LENGTH) -> ServerMemory:
    """The chat server: up, after the first visit (the assistant loaded), after the questions in Chromium tabs
    of `session_length` questions each, one tab at a time."""
    from playwright.sync_api import sync_playwright

    from retrieval.measure import browser

    say(f"memory: the chat server ({settings})")
    questions = [r["question"] for r in requests]
    with browser.streamlit_server(env=env) as server, sync_playwright() as playwright:
        pid = server.process.pid
        readings = [("server up", read(pid))]
        chromium = browser.launch_chromium(playwright)
        try:
            for start in range(0, len(questions), session_length):
                context = chromium.new_context(viewport=browser.LAPTOP)
                try:
                    page = context.new_page()
                    browser.open_chat(page, server.url)
                    if start == 0:
                        readings.append(("after the first visit", read(pid)))
                    for question in questions[start:start + session_length]:
                        browser.ask(page, question)
                finally:
                    context.close()
                say(f"memory: {min(start + session_length, len(questions))} questions asked in the page")
        finally:
            chromium.close()
        readings.append((f"after {len(questions)} questions ({session_length} a tab)", read(pid)))
    return ServerMemory("the chat server", settings, tuple(readings))


# -- where it goes --------------------------------------------------------------------------------
# Run by `python -c` in a fresh process: the libraries are read one by one before retrieval itself is imported
# (importing any of retrieval imports them all), then _steps goes on from there.
BOOTSTRAP = """
import sys
status = lambda: open("/proc/self/status").read()
early = [("the interpreter", status())]
import numpy; early.append(("numpy", status()))
import faiss; early.append(("faiss", status()))
import scipy.sparse, bm25s; early.append(("bm25s (and scipy.sparse)", status()))
import jieba, opencc; early.append(("jieba, opencc", status()))
sys.modules.setdefault("openvino_telemetry", None)  # as the embedder does: OpenVINO reports nothing
import openvino, sentencepiece; early.append(("openvino, sentencepiece", status()))
import pydantic, yaml, sqlalchemy; early.append(("pydantic, yaml, sqlalchemy", status()))
from retrieval.measure import memory
memory._main(early, int(sys.argv[1]))
"""


def _steps(early: Sequence[tuple[str, str]], questions: int) -> list[tuple[str, Resident]]:
    """The assistant's pieces loaded one by one in this process, as load_assistant does, then questions."""
    out = [(name, _resident(_status(text))) for name, text in early]

    def step(name: str) -> None:
        gc.collect()
        out.append((name, read()))

    from retrieval import loading
    from retrieval.build.index import load_or_build
    from retrieval.knowledge import load_knowledge
    from retrieval.serving.assistant import Assistant
    from retrieval.settings import Settings

    step("the rest of retrieval's imports")
    settings = Settings.from_env()
    loading.keep_word_cache_in(settings.data_dir)
    loading.compact_jieba()
    step("jieba's dictionary")
    kb = load_knowledge(settings.knowledge_dir)
    step("the knowledge base")
    embedder = loading.make_embedder(settings)
    step("the embedding model (sentencepiece tokenizer, compiled OpenVINO model)")
    index = load_or_build(kb, embedder, settings.index_dir)
    step("the index (vectors, keys, chunks, classifiers)")
    assistant = Assistant(kb, index, embedder, max_question_chars=settings.max_question_chars)
    loading.release_freed_memory()  # as load_assistant ends
    step("the assistant (BM25, vocabulary, readers)")
    for request in dev_questions(questions):
        assistant.ask(request["question"])
    step(f"{questions} questions, one at a time")
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        list(pool.map(lambda r: assistant.ask(r["question"]), dev_questions(questions)))
    step(f"{questions} questions on {CONCURRENT_CLIENTS} threads")
    return out


def loading_steps(env: dict[str, str] | None = None, questions: int = QUESTIONS) -> list[tuple[str, Resident]]:
    """`_steps` in a fresh process, so nothing loaded here counts."""
    done = subprocess.run([sys.executable, "-c", BOOTSTRAP, str(questions)], cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})},
                          capture_output=True, text=True, timeout=STEPS_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"the loading steps failed ({done.returncode}): {done.stderr[-1500:]}")
    return [(name, Resident(**values)) for name, values in json.loads(done.stdout.strip().splitlines()[-1])]


def steps_table(steps: Sequence[tuple[str, Resident]]) -> list[str]:
    """Markdown rows: each step's reading and what it added."""
    lines = ["| after | VmRSS | anon | file | added (VmRSS) |", "|---|---|---|---|---|"]
    previous = None
    for name, r in steps:
        added = "—" if previous is None else f"{r.rss - previous.rss:+.0f}"
        lines.append(f"| {name} | {r.rss:.0f} | {r.anon:.0f} | {r.file:.0f} | {added} |")
        previous = r
    return lines


# -- the bench's section ---------------------------------------------------------------------------
@dataclass
class MemoryBench:
    servers: list[ServerMemory]
    steps: list[tuple[str, Resident]]
    notes: list[str]


def server_memory(say: Say = print, page: bool = True) -> MemoryBench:
    """Both servers with the defaults and with the replicas' settings, and the loading steps."""
    requests = dev_questions()
    servers, notes = [], []
    runs: list[tuple[str, Callable[[], ServerMemory]]] = [
        ("API", lambda: api_memory(requests, say=say)),
        ("API (replica)", lambda: api_memory(requests, env=REPLICA_ENV, settings="replica settings", say=say))]
    if page:
        runs[:0] = [("page", lambda: page_memory(requests, say=say)),
                    ("page (replica)", lambda: page_memory(requests, env=REPLICA_ENV, settings="replica settings",
                                                           say=say))]
    for name, run in runs:
        try:
            servers.append(run())
        except Exception as exc:  # one server that cannot start must not lose the rest of the report
            notes.append(f"memory of the {name} could not be measured: {type(exc).__name__}: {str(exc)[:300]}")
            say(notes[-1])
    say("memory: the assistant loaded piece by piece in a fresh process")
    try:
        steps = loading_steps()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        steps = []
        notes.append(f"the loading steps could not be measured: {str(exc)[:300]}")
    return MemoryBench(servers, steps, notes)


def summary(bench: MemoryBench) -> list[tuple[str, str, str, str]]:
    """The bench's headline rows: each server's resident memory at the start and at the end, against the target."""
    rows = []
    for s in bench.servers:
        (_, first), (last_when, last) = s.readings[0 if s.server.startswith("`") else 1], s.readings[-1]
        rows.append((f"resident memory of {s.server} ({s.settings}): loaded / {last_when}",
                     f"{first.rss:.0f} / {last.rss:.0f} MiB", f"≤ {TARGET_MIB:.0f} MiB",
                     "met" if last.rss <= TARGET_MIB else "**not met**"))
    return rows


def render(bench: MemoryBench) -> list[str]:
    lines = ["", "## Memory (resident, read from /proc)", "",
             "| server and moment | VmRSS (anonymous + mapped files) | PSS | peak (VmHWM) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for s in bench.servers for a, b, c, d in s.rows()]
    lines += ["", f"Questions: the first {QUESTIONS} development questions that need no context. The page is "
              f"driven by Chromium, {SESSION_LENGTH} questions a tab, one tab at a time; the API by HTTP clients "
              f"on loopback. Replica settings: {', '.join(f'{k}={v}' for k, v in REPLICA_ENV.items())} "
              "(what deploy/ runs). Mapped files (libraries, the model's weights) are shared through the page "
              "cache by every process on the machine."]
    if bench.steps:
        lines += ["", "### Where it goes: the assistant loaded piece by piece (MiB)", "", *steps_table(bench.steps)]
    lines += [f"- {note}" for note in bench.notes]
    return lines


def _main(early: Sequence[tuple[str, str]], questions: int) -> None:
    """The end of BOOTSTRAP: the steps as one JSON line on standard output."""
    started = time.perf_counter()
    steps = _steps(early, questions)
    print(f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(json.dumps([(name, asdict(r)) for name, r in steps]))
