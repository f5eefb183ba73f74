"""Load on the chat server without browsers: many conversations at once through the headless client.

    result = run_load("http://127.0.0.1:8501", conversations(50, 10), pid=server_pid)
    print(result.summary())

Every conversation opens its own session (a websocket, as a browser tab does), then all of them ask their
questions at the same time, each waiting for its answer (and an optional think time) before the next. The
result keeps what each conversation saw, so a test can check that every answer arrived and that nobody saw
anybody else's messages, and the time to each answer and the server's CPU per answer (from /proc).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.measure.streamlit_client import ClientError, Session, cpu_seconds

ANSWER_TIMEOUT = 60.0     # one answer
TOTAL_TIMEOUT = 600.0     # the whole run, connecting included


def conversations(count: int, length: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`count` conversations of `length` questions from the development set, no question twice in one, and no
    question at the same place in two (so a message shown in the wrong conversation cannot go unnoticed)."""
    from retrieval.measure.evaluate import load_dev_set

    pool = [q.q for q in load_dev_set() if q.context is None]
    random.Random(seed).shuffle(pool)
    if len(pool) < length + count:
        raise ValueError(f"the development set has {len(pool)} questions, too few for {count} x {length}")
    # Conversation c asks pool[c + i * count] (wrapping): a question repeats only at another position.
    return [tuple(pool[(c + i * count) % len(pool)] for i in range(length)) for c in range(count)]


@dataclass
class ConversationResult:
    questions: tuple[str, ...]
    timings: list[float] = field(default_factory=list)   # seconds from sending each question to its answer
    shown_questions: list[str] = field(default_factory=list)
    answers: int = 0
    conversation_id: str = ""
    error: str = ""


@dataclass
class LoadResult:
    conversations: list[ConversationResult]
    elapsed_s: float          # the asking phase, all conversations connected
    connect_s: float          # opening every session (the page's first run for each)
    server_cpu_s: float       # server CPU during the asking phase (None when no pid was given)
    think_s: tuple[float, float]

    @property
    def timings(self) -> list[float]:
        return [t for c in self.conversations for t in c.timings]

    @property
    def answers(self) -> int:
        return len(self.timings)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.timings)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    @property
    def cpu_per_answer_ms(self) -> float:
        return 1000 * self.server_cpu_s / self.answers if self.answers else float("nan")

    def summary(self) -> str:
        errors = sum(bool(c.error) for c in self.conversations)
        think = "no think time" if self.think_s == (0, 0) else f"think time {self.think_s[0]:g}-{self.think_s[1]:g} s"
        return (f"{len(self.conversations)} concurrent conversations ({think}), {self.answers} answers in "
                f"{self.elapsed_s:.1f} s ({self.answers / self.elapsed_s:.1f}/s), {errors} failed; time to answer "
                f"p50 {self.percentile(50):.2f} s, p95 {self.percentile(95):.2f} s, max {max(self.timings):.2f} s; "
                f"server CPU {self.cpu_per_answer_ms:.0f} ms per answer; connecting all took {self.connect_s:.1f} s")


async def _conversation(url: str, questions: tuple[str, ...], arrive, go: asyncio.Event,
                        think: tuple[float, float], seed: int) -> ConversationResult:
    """One conversation: connect, say so through `arrive()`, wait for `go`, then ask every question in turn."""
    result = ConversationResult(questions)
    rng = random.Random(seed)
    arrived = False
    try:
        async with Session.open(url, timeout=ANSWER_TIMEOUT) as session:
            params = dict(p.split("=", 1) for p in session.query_string.split("&") if "=" in p)
            result.conversation_id = params.get("c", "")
            arrive()
            arrived = True
            await go.wait()
            for question in questions:
                if think[1] > 0:
                    await asyncio.sleep(rng.uniform(*think))
                result.timings.append(await session.ask(question, timeout=ANSWER_TIMEOUT))
            chat = session.chat()
            result.shown_questions = [m.text for m in chat if m.role == "user"]
            result.answers = sum(m.role == "assistant" for m in chat)
    except (ClientError, OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if not arrived:
            arrive()
    return result


async def drive(url: str, convs: list[tuple[str, ...]], pid: int | None = None,
                think: tuple[float, float] = (0.0, 0.0), timeout: float = TOTAL_TIMEOUT) -> LoadResult:
    """Open a session per conversation, then let them all ask at once; bounded by `timeout` seconds."""
    ready, go = asyncio.Event(), asyncio.Event()
    arrived = 0

    def arrive() -> None:
        nonlocal arrived
        arrived += 1
        if arrived == len(convs):
            ready.set()

    start = time.perf_counter()
    tasks = [asyncio.create_task(_conversation(url, qs, arrive, go, think, seed)) for seed, qs in enumerate(convs)]
    try:
        await asyncio.wait_for(ready.wait(), timeout)
        connect_s = time.perf_counter() - start
        cpu_before = cpu_seconds(pid) if pid else 0.0
        asking = time.perf_counter()
        go.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), max(1.0, timeout - (asking - start)))
        elapsed = time.perf_counter() - asking
        cpu = (cpu_seconds(pid) - cpu_before) if pid else float("nan")
    finally:
        for task in tasks:
            task.cancel()
    return LoadResult(list(results), elapsed, connect_s, cpu, think)


def run_load(url: str, convs: list[tuple[str, ...]], pid: int | None = None,
             think: tuple[float, float] = (0.0, 0.0), timeout: float = TOTAL_TIMEOUT) -> LoadResult:
    return run(lambda: drive(url, convs, pid, think, timeout))


def run(make_coroutine):
    """asyncio.run(make_coroutine()), in a thread of its own when this one already runs an event loop (as
    it does under Playwright's sync API in the same test session)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


# -- what one answer and one idle session cost the server ---------------------------------------------------
async def turn_costs(url: str, pid: int, sessions: int = 5, turns: int = 40,
                     report: tuple[int, ...] | None = None) -> dict[int, float]:
    """Server CPU (ms) per answer at each turn of a conversation (or only at the turns in `report`):
    `sessions` conversations take turns, one question at a time, and the CPU of each round of `sessions`
    answers is divided among them (so the 10 ms tick of /proc is divided too)."""
    from retrieval.measure.evaluate import load_dev_set

    pool = [q.q for q in load_dev_set() if q.context is None]
    out: dict[int, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(Session.open(url, timeout=ANSWER_TIMEOUT))
                  for _ in range(sessions)]
        for turn in range(1, turns + 1):
            before = cpu_seconds(pid)
            for n, session in enumerate(opened):
                await session.ask(pool[(turn * 7 + n * 53) % len(pool)], timeout=ANSWER_TIMEOUT)
            if report is None or turn in report:
                out[turn] = 1000 * (cpu_seconds(pid) - before) / sessions
    return out


async def idle_cost(url: str, pid: int, sessions: int = 5, seconds: float = 10.0) -> float:
    """Server CPU (ms) per connected, idle session per 10 s, after each has loaded the page and asked once."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(sessions):
            session = await stack.enter_async_context(Session.open(url, timeout=ANSWER_TIMEOUT))
            await session.ask("GV怎么充值", timeout=ANSWER_TIMEOUT)
        await asyncio.sleep(1.0)
        before = cpu_seconds(pid)
        await asyncio.sleep(seconds)
        return 1000 * (cpu_seconds(pid) - before) / sessions * (10.0 / seconds)


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid`, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


# -- the web tier's numbers, for `retrieval bench` and before/after comparisons -----------------------------
PER_ANSWER_TARGET_MS = 50.0
P95_TARGET_S = 1.0
THINK_S = (2.0, 6.0)      # a person reading an answer before the next question


def web_tier(say=print, quick: bool = False, root: Path | None = None, entry: str = "chat_server.py",
             options: tuple[str, ...] = (), dev_options: tuple[str, ...] | None = None) -> list[tuple[str, ...]]:
    """(measurement, value, target, verdict) rows for a fresh server of `entry` in `root`: start-up, memory,
    server CPU per answer along a conversation and per idle session, and 50 conversations at once. With
    `dev_options`, a second server with those flags (`make dev`'s watcher) is measured idle too."""
    from retrieval.measure.browser import ROOT, streamlit_server

    root = root or ROOT
    turns, sessions, count, length = (20, 3, 20, 5) if quick else (40, 5, 50, 10)
    rows: list[tuple[str, ...]] = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    say(f"web tier: starting {entry} in {root}")
    start = time.perf_counter()
    with streamlit_server(entry=entry, root=root, options=options) as server:
        healthy = time.perf_counter() - start
        pid = server.process.pid
        first = time.perf_counter()
        run(lambda: _visit(server.url))
        usable = time.perf_counter() - first
        rows.append(("server start to health check (the assistant loaded by then with chat_server.py)",
                     f"{healthy:.1f} s", "—", "—"))
        rows.append(("then the first visit's page run (the model loads here without chat_server.py)",
                     f"{usable:.2f} s", "—", "—"))
        rows.append(("server resident memory after start and one visit", f"{rss_mib(pid):.0f} MiB", "—", "—"))
        say(f"web tier: server CPU per answer over {turns} turns, {sessions} conversations")
        costs = run(lambda: turn_costs(server.url, pid, sessions=sessions, turns=turns))
        # The median of three rounds at each point: a one-off (a garbage collection, a lazy first use)
        # says nothing about how the cost grows with the conversation.
        points = {f"{t - 2}-{t}" if t > 1 else "1-3": statistics.median(costs[n] for n in
                                                                       (range(t - 2, t + 1) if t > 1 else (1, 2, 3)))
                  for t in (1, turns // 2, turns)}
        first, last = points["1-3"], points[f"{turns - 2}-{turns}"]
        rows.append((f"server CPU per answer at turns {' / '.join(points)} ({sessions} conversations answer once a "
                     f"round; median of three rounds; the costliest round {max(costs.values()):.0f} ms)",
                     " / ".join(f"{v:.0f}" for v in points.values()) + " ms",
                     f"≤ {PER_ANSWER_TARGET_MS:.0f} ms at turn 1 and at turn {turns}",
                     verdict(first <= PER_ANSWER_TARGET_MS and last <= PER_ANSWER_TARGET_MS)))
        say("web tier: idle sessions")
        idle = run(lambda: idle_cost(server.url, pid, sessions=sessions))
        rows.append(("server CPU per idle connected session", f"{idle:.0f} ms per 10 s", "—", "—"))
        for think in (THINK_S, (0.0, 0.0)):
            say(f"web tier: {count} conversations of {length} questions, think time {think}")
            load = run_load(server.url, conversations(count, length), pid=pid, think=think)
            failed = sum(bool(c.error) or c.shown_questions != list(c.questions) for c in load.conversations)
            label = (f"{count} conversations x {length} questions at once, "
                     + (f"think time {think[0]:g}-{think[1]:g} s" if think[1] else "no think time (stress)"))
            rows.append((label + ": time to answer p50 / p95; server CPU per answer; answers/s",
                         f"{load.percentile(50):.2f} / {load.percentile(95):.2f} s; {load.cpu_per_answer_ms:.0f} ms; "
                         f"{load.answers / load.elapsed_s:.1f}/s; {failed} conversations failed",
                         f"p95 ≤ {P95_TARGET_S:g} s" if think[1] else "—",
                         verdict(load.percentile(95) <= P95_TARGET_S and not failed) if think[1] else "—"))
        rows.append(("server resident memory after all that", f"{rss_mib(pid):.0f} MiB", "—", "—"))
    if dev_options is not None:
        say("web tier: idle sessions with the development settings (file watcher on)")
        with streamlit_server(entry=entry, root=root, options=dev_options) as server:
            idle = run(lambda: idle_cost(server.url, server.process.pid, sessions=sessions))
        rows.append(("server CPU per idle session with `make dev`'s file watcher", f"{idle:.0f} ms per 10 s",
                     "—", "—"))
    return rows


async def _visit(url: str) -> None:
    async with Session.open(url, timeout=300.0):
        pass


DEV_OPTIONS = ("--server.fileWatcherType", "auto", "--server.runOnSave", "true")


def main(argv: list[str] | None = None) -> int:
    """`python -m retrieval.measure.webload [--quick] [--root DIR --entry app.py]`: the web tier's rows."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--root", type=Path, default=None, help="another copy of the project (before/after)")
    parser.add_argument("--entry", default="chat_server.py")
    parser.add_argument("--option", action="append", default=[], help="a streamlit flag and its value, as one")
    parser.add_argument("--dev", action="store_true", help="also measure idle sessions with the file watcher on")
    args = parser.parse_args(argv)
    options = tuple(part for option in args.option for part in option.split(" ", 1))
    rows = web_tier(say=lambda m: print(f"[web {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True),
                    quick=args.quick, root=args.root, entry=args.entry, options=options,
                    dev_options=DEV_OPTIONS if args.dev else None)
    print("| measurement | value | target | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
