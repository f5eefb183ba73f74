"""A bounded load test of the HTTP API: `python -m retrieval serve` on loopback, N async clients asking at once.

`api_server()` starts the real server on a free port with its own feedback database and stops it whatever
happens; `run_load()` sends a fixed number of questions from `clients` concurrent connections, stops at a
deadline, and times each answer. Nothing but 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.measure.browser import PYTHON, _die_with_parent, _stop, _tail, free_port
from retrieval.settings import ROOT

START_TIMEOUT = 300.0     # seconds until /healthz answers: the model loads first (and the index, if stale)
REQUEST_TIMEOUT = 60.0    # one answer, on a loaded 2-core machine
DEADLINE = 120.0          # one level of concurrency, start to finish


class ServerError(RuntimeError):
    """The API server died or never became healthy; the message carries its output."""


@dataclass(frozen=True)
class ApiServer:
    url: str
    pid: int
    feedback_db: Path


@dataclass(frozen=True)
class LoadResult:
    """One level of concurrency: what was sent, what came back, and how long each answer took."""

    clients: int
    sent: int
    answered: int                 # 200 with the question that was asked
    failures: dict[str, int]      # "HTTP 503", "ReadTimeout", "wrong question", ... -> count
    seconds: float                # first request sent to last answer received
    latencies_ms: tuple[float, ...]  # of the answered requests
    server_cpu_s: float | None = None  # user + system CPU of the server process over the run
    client_cpu_s: float | None = None  # the same for this process, the clients: they share the machine

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of process `pid` so far, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def api_server(env: dict[str, str] | None = None, timeout: float = START_TIMEOUT) -> Iterator[ApiServer]:
    """`python -m retrieval serve` on a free loopback port (the default settings, a fresh feedback database),
    yielded once /healthz answers 200 and stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="assistant-api-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        feedback_db = Path(tmp) / "feedback.sqlite3"
        log = Path(tmp) / "server.log"
        # ASSISTANT_DATABASE_URL emptied: load-test questions go to the temporary file, never to a real database
        child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ASSISTANT_DATABASE_URL": "",
                     "ASSISTANT_FEEDBACK_DB": str(feedback_db), **(env or {})}
        with open(log, "wb") as out:
            process = subprocess.Popen([str(PYTHON), "-m", "retrieval", "serve", "--host", "127.0.0.1", "--port",
                                        str(port)], cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(url):
                if process.poll() is not None:
                    raise ServerError(f"the API server exited with {process.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    raise ServerError(f"the API server was not healthy within {timeout:.0f}s:\n{_tail(log)}")
                time.sleep(0.2)
            yield ApiServer(url, process.pid, feedback_db)
        finally:
            _stop(process)


async def _load(url: str, bodies: Sequence[bytes], expected: Sequence[str], clients: int,
                deadline_s: float, timeout_s: float) -> tuple[int, Counter, list[float], float]:
    import httpx2

    failures: Counter[str] = Counter()
    latencies: list[float] = []
    queue = iter(range(len(bodies)))
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=timeout_s) as client:
        start = time.perf_counter()
        stop_at = start + deadline_s

        async def one_client() -> None:
            while time.perf_counter() < stop_at and (i := next(queue, None)) is not None:
                sent = time.perf_counter()
                try:
                    response = await client.post("/v1/ask", content=bodies[i],
                                                 headers={"content-type": "application/json"})
                except httpx2.HTTPError as exc:
                    failures[type(exc).__name__] += 1
                    continue
                elapsed = (time.perf_counter() - sent) * 1000.0
                if response.status_code != 200:
                    failures[f"HTTP {response.status_code}"] += 1
                elif response.json().get("question") != expected[i]:  # another client's answer
                    failures["wrong question"] += 1
                else:
                    latencies.append(elapsed)

        await asyncio.gather(*(one_client() for _ in range(clients)))
        seconds = time.perf_counter() - start
    sent_count = len(latencies) + sum(failures.values())
    return sent_count, failures, latencies, seconds


def run_load(server: ApiServer, requests: Sequence[dict], clients: int, expected: Sequence[str] | None = None,
             deadline_s: float = DEADLINE, timeout_s: float = REQUEST_TIMEOUT) -> LoadResult:
    """Send `requests` ({"question": ..., "provider": ...} each, in order) from `clients` connections at once.

    An answer counts only if it is a 200 whose `question` is `expected[i]` (default: the question stripped),
    so an answer crossing over to another client would show as a failure."""
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    bodies = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in requests]
    expected = list(expected) if expected is not None else [r["question"].strip() for r in requests]
    server_before, client_before = process_cpu_s(server.pid), time.process_time()
    sent, failures, latencies, seconds = asyncio.run(_load(server.url, bodies, expected, clients, deadline_s,
                                                           timeout_s))
    server_after, client_after = process_cpu_s(server.pid), time.process_time()
    server_cpu = server_after - server_before if server_before is not None and server_after is not None else None
    return LoadResult(clients, sent, len(latencies), dict(failures), seconds, tuple(latencies), server_cpu,
                      client_after - client_before)


@dataclass(frozen=True)
class Paired:
    """One question at a time, each asked in-process and then over HTTP back to back, so both see the same
    machine: on a shared 2-core machine, runs measured minutes apart are not comparable."""

    engine_ms: tuple[float, ...]
    engine_cpu_s: float         # this process's CPU over the in-process asks
    api: LoadResult             # the HTTP side, as a one-client level
    expected: tuple[str, ...]   # the question each in-process answer understood


def run_paired(server: ApiServer, requests: Sequence[dict], ask: Callable[[dict], str],
               timeout_s: float = REQUEST_TIMEOUT) -> Paired:
    """For each request: `ask(request)` in-process (returning the answer's question), then POST /v1/ask."""
    import httpx2

    engine_ms, api_ms, expected = [], [], []
    failures: Counter[str] = Counter()
    engine_cpu = client_cpu = server_cpu = 0.0
    with httpx2.Client(base_url=server.url, timeout=timeout_s) as client:
        for request in requests:
            cpu, start = time.process_time(), time.perf_counter()
            expected.append(ask(request))
            engine_ms.append((time.perf_counter() - start) * 1000.0)
            engine_cpu += time.process_time() - cpu
            body = json.dumps(request, ensure_ascii=False).encode("utf-8")
            server_before, cpu, start = process_cpu_s(server.pid) or 0.0, time.process_time(), time.perf_counter()
            try:
                response = client.post("/v1/ask", content=body, headers={"content-type": "application/json"})
            except httpx2.HTTPError as exc:
                failures[type(exc).__name__] += 1
                continue
            elapsed = (time.perf_counter() - start) * 1000.0
            client_cpu += time.process_time() - cpu
            server_cpu += (process_cpu_s(server.pid) or 0.0) - server_before
            if response.status_code != 200:
                failures[f"HTTP {response.status_code}"] += 1
            elif response.json().get("question") != expected[-1]:
                failures["wrong question"] += 1
            else:
                api_ms.append(elapsed)
    api = LoadResult(1, len(requests), len(api_ms), dict(failures), sum(api_ms) / 1000.0, tuple(api_ms), server_cpu,
                     client_cpu)
    return Paired(tuple(engine_ms), engine_cpu, api, tuple(expected))
