"""Replicas behind nginx (deploy/): two chat servers and the API on one PostgreSQL; one chat server dies mid-run.

deploy/replicas.py starts the whole set on loopback. Six headless conversations (Streamlit's own websocket
protocol, retrieval/measure/streamlit_client.py), three pinned to each chat server by nginx's cookie, and a
stream of API calls ask questions through nginx while the first chat server is killed (SIGKILL, as a crash).
Then: the other server's conversations all finished, the API never failed, the dead server's users get the
other one when they come back, with their conversation restored from the store, and every answer anybody saw
has its row in PostgreSQL. A real Chromium checks the cookie and the websocket land on one server.
Bounded in time: the set starts within replicas.START_TIMEOUT, the run within RUN_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from retrieval.measure.streamlit_client import Session
from retrieval.measure.webload import conversations, run
from retrieval.settings import ROOT

pytest_plugins = ["conftest_browser"]  # chromium

COOKIE = "assistant_replica"
PER_REPLICA = 3        # conversations pinned to each chat server
QUESTIONS = 8          # per conversation
KILL_AFTER = 8         # answers seen in the conversations before the first chat server is killed
THINK_S = 0.3
RUN_TIMEOUT = 300.0


def _load_replicas():
    spec = importlib.util.spec_from_file_location("deploy_replicas", ROOT / "deploy" / "replicas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


replicas_module = _load_replicas()


def get(url: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Cookie": f"{COOKIE}={key}"} if key else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def replica(names: dict[str, str], headers) -> str:
    """The chat server that answered, by nginx's X-Replica header: the last it tried (a dead one comes first)."""
    return names[headers["X-Replica"].split(", ")[-1]]


def ask_api(base: str, question: str) -> dict:
    request = urllib.request.Request(base + "/v1/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return json.loads(response.read())


@dataclass
class Conversation:
    key: str
    replica: str
    questions: tuple[str, ...]
    served_by: list[str] = field(default_factory=list)   # X-Replica of each websocket opened
    answered: list[str] = field(default_factory=list)
    conversation_id: str = ""
    error: str = ""


async def converse(base: str, names: dict[str, str], conv: Conversation, seen: list[int]) -> None:
    """Ask every question in one session, until the end or until the server goes away."""
    try:
        async with Session.open(base, headers={"Cookie": f"{COOKIE}={conv.key}"}) as session:
            conv.served_by.append(replica(names, session.ws.response.headers))
            conv.conversation_id = dict(p.split("=", 1) for p in session.query_string.split("&") if "=" in p)["c"]
            for question in conv.questions:
                await asyncio.sleep(THINK_S)
                await session.ask(question)
                if session.chat()[-1].role != "assistant":
                    raise AssertionError(f"no answer shown after {question!r}")
                conv.answered.append(question)
                seen[0] += 1
    except Exception as exc:  # noqa: BLE001 - the dead server's sessions end here; the test reads why
        conv.error = f"{type(exc).__name__}: {exc}"


async def ask_api_meanwhile(base: str, questions: list[str], done: asyncio.Event, answered: list[str]) -> None:
    """API calls one after another until the conversations end: every one must succeed, kill or no kill."""
    for question in questions:
        if done.is_set():
            return
        reply = await asyncio.to_thread(ask_api, base, question)
        assert reply["question"] == question
        answered.append(question)
        await asyncio.sleep(THINK_S)


async def kill_when(replicas, name: str, seen: list[int], killed: list[float]) -> None:
    while seen[0] < KILL_AFTER:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(replicas.kill, name)
    killed.append(time.monotonic())


async def run_all(replicas, names: dict[str, str], convs: list[Conversation], api_questions: list[str]):
    seen, killed, api_answered, done = [0], [], [], asyncio.Event()
    api = asyncio.create_task(ask_api_meanwhile(replicas.url, api_questions, done, api_answered))
    killer = asyncio.create_task(kill_when(replicas, "chat-1", seen, killed))
    await asyncio.gather(*(converse(replicas.url, names, c, seen) for c in convs))
    done.set()
    await api
    await asyncio.wait_for(killer, 5)  # the conversations cannot all have finished before the kill
    return api_answered


async def come_back(base: str, names: dict[str, str], conv: Conversation, question: str) -> list[str]:
    """A user of the dead server reloads: same cookie, same conversation id in the URL."""
    async with Session.open(base, headers={"Cookie": f"{COOKIE}={conv.key}"},
                            query_string=f"c={conv.conversation_id}") as session:
        conv.served_by.append(replica(names, session.ws.response.headers))
        restored = [m.text for m in session.chat() if m.role == "user"]
        await session.ask(question)
        conv.answered.append(question)
        return restored


def keys_by_replica(base: str, names: dict[str, str]) -> dict[str, list[str]]:
    """Cookie values nginx routes to each chat server: PER_REPLICA of each, found by asking."""
    found: dict[str, list[str]] = {name: [] for name in names.values()}
    for n in range(400):
        status, headers, _ = get(base + "/", f"key{n:03d}")
        assert status == 200
        bucket = found[replica(names, headers)]
        if len(bucket) < PER_REPLICA:
            bucket.append(f"key{n:03d}")
        if all(len(b) == PER_REPLICA for b in found.values()):
            return found
    raise AssertionError(f"nginx sent 400 keys to one chat server only: {found}")


def access_log(replicas) -> list[tuple[str, str, str]]:
    """(uri, cookie key, upstream) of every request nginx logged."""
    rows = []
    for line in (replicas.state / "nginx" / "access.log").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        fields = dict(p.split("=", 1) for p in parts if "=" in p)
        rows.append((parts[3].rstrip('"'), fields.get("key", "-"), fields.get("upstream", "-")))
    return rows


def stored_questions(database_url: str) -> Counter:
    with psycopg.connect(database_url) as conn:
        return Counter(q for (q,) in conn.execute("SELECT question FROM interactions"))


def stored_conversations(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {cid for (cid,) in conn.execute("SELECT id FROM conversations")}


@pytest.fixture(scope="module")
def replicas():
    """One set for the module (starting it takes a minute or two): the browser test first, then the kill.
    In a folder of its own under /tmp: PostgreSQL's user must reach it, and pytest's folders are root's only."""
    folder = Path(tempfile.mkdtemp(prefix="replicas-test-"))
    try:
        with replicas_module.Replicas(folder) as started:
            yield started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.browser
def test_a_browser_keeps_one_replica_for_the_page_and_its_websocket(replicas, chromium):
    # The session's Chromium (tests/conftest_browser.py): a second sync_playwright() inside the first one's
    # event loop is refused by Playwright.
    from retrieval.measure import browser

    names = {p.url.removeprefix("http://"): p.name for p in replicas.chat_servers}
    context = chromium.new_context(viewport=browser.LAPTOP)
    try:
        page = context.new_page()
        browser.open_chat(page, replicas.url)
        answer = browser.ask(page, "GV怎么充值")
        assert "Google Voice" in browser.content(answer).inner_text()
        key = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    finally:
        context.close()
    # nginx logs a websocket when it closes, a moment after the browser's context does
    deadline = time.monotonic() + 30
    while True:
        mine = [(uri, upstream) for uri, k, upstream in access_log(replicas) if k == key]
        if any(uri == "/_stcore/stream" for uri, _ in mine) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any(uri == "/_stcore/stream" for uri, _ in mine), mine
    assert len({upstream for _, upstream in mine}) == 1 and mine[0][1] in names, mine


@pytest.mark.browser
def test_one_replica_dies_the_other_keeps_serving_and_no_row_is_lost(replicas):
    names = {p.url.removeprefix("http://"): p.name for p in replicas.chat_servers}
    keys = keys_by_replica(replicas.url, names)
    pool = conversations(2 * PER_REPLICA + 2, QUESTIONS, seed=13)
    convs = [Conversation(key, name, pool[i * PER_REPLICA + j])
             for i, (name, ks) in enumerate(sorted(keys.items())) for j, key in enumerate(ks)]
    api_questions = list(pool[-2] + pool[-1])

    api_answered = run(lambda: asyncio.wait_for(run_all(replicas, names, convs, api_questions), RUN_TIMEOUT))

    # Sticky: each websocket went where the cookie's page loads went.
    for conv in convs:
        assert conv.served_by == [conv.replica], conv
    survivors = [c for c in convs if c.replica == "chat-2"]
    victims = [c for c in convs if c.replica == "chat-1"]
    assert all(not c.error and c.answered == list(c.questions) for c in survivors), survivors
    assert all(c.error and len(c.answered) < QUESTIONS for c in victims), victims
    assert len(api_answered) >= 4 and len(api_answered) >= len(api_questions) // 2, api_answered
    assert replicas.processes["chat-1"].process.poll() is not None  # it is dead, really
    assert replicas.processes["chat-2"].process.poll() is None

    # The dead server's users come back: the other server takes them, with their conversation.
    for n, conv in enumerate(victims):
        restored = run(lambda conv=conv, n=n: asyncio.wait_for(
            come_back(replicas.url, names, conv, pool[-1][n]), 60))
        assert conv.served_by[-1] == "chat-2", conv
        assert restored[:len(conv.answered) - 1] == conv.answered[:-1], (restored, conv)
    status, headers, _ = get(replicas.url + "/", victims[0].key)
    assert status == 200 and replica(names, headers) == "chat-2"
    assert ask_api(replicas.url, "Mint 怎么续费")["answered"]

    # No stored row lost: every answer anybody saw has its row, whichever server or API answered it.
    seen = Counter(q for c in convs for q in c.answered) + Counter(api_answered) + Counter(["Mint 怎么续费"])
    stored = stored_questions(replicas.database_url)
    assert not seen - stored, f"answered but not stored: {seen - stored}"
    assert {c.conversation_id for c in convs} <= stored_conversations(replicas.database_url)


def test_the_config_is_filled_in_whole_or_refused():
    template = replicas_module.CONFIG.read_text(encoding="utf-8")
    fields = {"user": "", "state": "/tmp/x", "port": "8080", "api_port": "8000",
              "chat_servers": "        server 127.0.0.1:8501;"}
    text = replicas_module.render_config(template, **fields)
    assert "{{" not in text and "listen 127.0.0.1:8080;" in text and "server 127.0.0.1:8000;" in text
    with pytest.raises(ValueError, match="api_port"):
        replicas_module.render_config(template, **{k: v for k, v in fields.items() if k != "api_port"})


@pytest.mark.skipif(not replicas_module.NGINX.exists(), reason="no nginx: `make nginx` installs it")
def test_nginx_accepts_the_config(tmp_path):
    folder = tmp_path / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "tmp" / sub).mkdir(parents=True)
    config = folder / "nginx.conf"
    config.write_text(replicas_module.render_config(
        replicas_module.CONFIG.read_text(encoding="utf-8"), user="", state=str(folder), port="18080",
        api_port="18000", chat_servers="        server 127.0.0.1:18501;\n        server 127.0.0.1:18502;"),
        encoding="utf-8")
    done = subprocess.run([str(replicas_module.NGINX), "-t", "-c", str(config), "-p", str(folder), "-e",
                           str(folder / "error.log")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
