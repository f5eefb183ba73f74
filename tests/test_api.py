"""The HTTP API: the same JSON as `ask --jsonl`, JSON errors for bad input, every question logged, and its own
OpenAPI description holding for generated requests."""

from __future__ import annotations

import doctest
import io
import json
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest
import schemathesis
from conftest import FIXTURE_KB
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from retrieval.api import request as request_module
from retrieval.api.app import create_app
from retrieval.api.schema import AskResponse, Hit
from retrieval.cli import answer_stream
from retrieval.measure.bench import ApiBench, Latency, render_api
from retrieval.measure.http_load import LoadResult, api_server, run_load
from retrieval.settings import ROOT
from retrieval.store import FeedbackStore, queries

QUESTIONS = [{"question": "GV怎么充值？", "provider": None},
             {"question": "how do i top up", "provider": "tello"},
             {"question": "my card was declined"},
             {"question": "？？？", "provider": None},
             {"question": "", "provider": None},
             {"question": "怎么充值", "provider": "google_voice", "topic": "topup_steps", "language": "en"},
             {"question": "hello", "session_id": "widget-42", "extra": "ignored"}]


@pytest.fixture
def store(tmp_path: Path):
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    yield store
    store.close()


@pytest.fixture
def client(tiny_assistant, store):
    with TestClient(create_app(tiny_assistant, store)) as c:
        yield c


def cli_lines(assistant, bodies: list[bytes]) -> list[dict]:
    out = io.StringIO()
    answer_stream(assistant, io.BytesIO(b"".join(body + b"\n" for body in bodies)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_health_and_providers(client, tiny_kb):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "entries": len(tiny_kb.entries),
                                                           "store": "ok"}
    providers = client.get("/v1/providers").json()["providers"]
    assert [p["id"] for p in providers] == list(tiny_kb.providers)
    gv = next(p for p in providers if p["id"] == "google_voice")
    assert gv["name"]["en"] and gv["name"]["zh"] and gv["support_url"].startswith("https://")


def test_ask_returns_what_ask_jsonl_writes(client, tiny_assistant):
    bodies = [json.dumps(q, ensure_ascii=False).encode() for q in QUESTIONS]
    over_http = []
    for body in bodies:
        response = client.post("/v1/ask", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        over_http.append(response.json())
    assert over_http == cli_lines(tiny_assistant, bodies)
    gv, tello, declined, symbols, empty, follow_up, hello = over_http
    assert gv["provider"] == "google_voice" and gv["answered"] is True and gv["topic"] == "topup_steps"
    assert len(gv["hits"]) >= 3 and gv["hits"][0]["provider"] == "google_voice"
    assert tello["provider"] == "tello" and tello["language"] == "en"
    assert symbols["answered"] is False and empty["kind"] == "empty"
    assert follow_up["language"] == "en" and follow_up["provider"] == "google_voice"


BAD = {  # body, status, words the error must contain
    "missing question": (b'{"provider": null}', 422, 'missing "question"'),
    "question null": (b'{"question": null}', 422, '"question" must be a string, got null'),
    "question a number": (b'{"question": 3}', 422, '"question" must be a string, got a number'),
    "provider a number": (b'{"question": "hi", "provider": 7}', 422, '"provider" must be a string or null'),
    "provider a list": (b'{"question": "hi", "provider": ["tello"]}', 422, "got an array"),
    "provider an object": (b'{"question": "hi", "provider": {"id": "tello"}}', 422, "got an object"),
    "unknown provider": (b'{"question": "hi", "provider": "nope"}', 422, "unknown provider 'nope'"),
    "unknown topic": (b'{"question": "hi", "topic": "weather"}', 422, "unknown topic 'weather'"),
    "unknown language": (b'{"question": "hi", "language": "fr"}', 422, "unknown language 'fr'"),
    "session id too long": (b'{"question": "hi", "session_id": "' + b"s" * 65 + b'"}', 422, "1 to 64"),
    "not an object": (b'"GV"', 422, "expected an object"),
    "empty body": (b"", 400, "invalid JSON"),
    "not JSON": (b"question=hi", 400, "invalid JSON"),
    "not UTF-8": (b'{"question": "\xff"}', 400, "not UTF-8: byte 0xff"),
    "a lone surrogate": (b'{"question": "\\udc00 hi"}', 422, "lone surrogate"),
    "nested 5,000 deep": (b"[" * 5_000, 400, "nested too deeply"),
    "an integer of 4,301 digits": (b'{"question": ' + b"1" * 4_301 + b"}", 400, "too many digits"),
    "too large": (b'{"question": "' + b"a" * 20_000 + b'"}', 413, "too large: more than 16384 bytes"),
    "nested 100,000 deep": (b"[" * 100_000, 413, "too large"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_a_json_4xx_with_the_command_lines_words(client, tiny_assistant, store, name):
    body, status, words = BAD[name]
    response = client.post("/v1/ask", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and set(response.json()) == {"error"}, response.text
    assert words in response.json()["error"]
    if body:  # the command line says the same for the same line (a blank line is its own case there)
        (line,) = cli_lines(tiny_assistant, [body])
        assert line == {"error": response.json()["error"], "line": 1}
    assert queries.export_rows(store).empty  # refused requests are not questions


def test_a_large_body_is_refused_before_it_is_read(tiny_assistant):
    """Straight through ASGI (the test client reads whole bodies first): 640 MB offered in 64 KB pieces."""
    app = create_app(tiny_assistant)
    pulled, sent = [], []

    async def receive() -> dict:
        pulled.append(1)
        return {"type": "http.request", "body": b"a" * 65_536, "more_body": len(pulled) < 10_000}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/ask", "raw_path": b"/v1/ask", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 413 and b"too large" in sent[1]["body"]
    assert len(pulled) <= 1


def test_other_errors_are_json_too(client):
    missing = client.get("/v2/ask")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong_method = client.get("/v1/ask")
    assert wrong_method.status_code == 405 and set(wrong_method.json()) == {"error"}
    assert "POST" in wrong_method.headers["allow"]


def test_every_question_is_logged_to_the_pages_store(client, store):
    answers = [client.post("/v1/ask", json=q).json() for q in QUESTIONS]
    rows = queries.export_rows(store)
    assert len(rows) == len(QUESTIONS)
    assert list(rows["kind"]) == [a["kind"] for a in answers]
    assert list(rows["answered"]) == [a["answered"] for a in answers]
    assert list(rows["provider"].fillna("-")) == [a["provider"] or "-" for a in answers]
    assert list(rows["session_id"]) == ["api"] * (len(QUESTIONS) - 1) + ["widget-42"]


def test_a_card_number_never_reaches_the_store(client, store):
    answer = client.post("/v1/ask", json={"question": "my card 4111 1111 1111 1111 was declined"}).json()
    assert "4111" not in answer["question"] and answer["notices"]
    assert "4111" not in queries.export_rows(store)["question"].iloc[0]


def test_answers_go_on_when_the_store_cannot_be_written(tiny_assistant, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    store = FeedbackStore(tmp_path / "file" / "feedback.sqlite3")  # its folder can never be made
    with TestClient(create_app(tiny_assistant, store)) as c:
        response = c.post("/v1/ask", json={"question": "GV怎么充值？"})
        assert response.status_code == 200 and response.json()["provider"] == "google_voice"
        assert c.get("/healthz").json() == {"status": "ok", "entries": len(tiny_assistant.kb.entries),
                                            "store": "unavailable"}
    assert store.queued == 1  # kept in memory for when the database comes back
    with TestClient(create_app(tiny_assistant, None)) as c:
        assert c.post("/v1/ask", json={"question": "GV怎么充值？"}).status_code == 200


def test_a_mistake_report_lands_in_the_operators_inbox_masked(client, store):
    gv = client.post("/v1/ask", json={"question": "GV怎么充值？"}).json()
    sent = {"entry_id": gv["entry_id"], "text": "  the cap is $100 now, paid with 4111 1111 1111 1111  ",
            "session_id": "widget-42"}
    response = client.post("/v1/report", json=sent)
    assert response.status_code == 200, response.text
    kept = response.json()
    assert kept["status"] == "saved" and kept["entry_id"] == gv["entry_id"]
    assert kept["text"].startswith("the cap is $100 now") and "4111" not in kept["text"]
    reports = queries.open_reports(store)
    assert reports["entry_id"].tolist() == [gv["entry_id"]] and reports["text"].tolist() == [kept["text"]]


REPORT_BAD = {  # body, status, words the error must contain
    "no entry": ({"text": "wrong"}, 422, 'missing "entry_id"'),
    "no text": ({"entry_id": "gv-topup"}, 422, 'missing "text"'),
    "unknown entry": ({"entry_id": "nope", "text": "wrong"}, 422, "unknown entry 'nope'"),
    "entry a number": ({"entry_id": 7, "text": "wrong"}, 422, '"entry_id" must be a string, got a number'),
    "blank text": ({"entry_id": "gv-topup", "text": " \n "}, 422, "a few words saying what is wrong"),
    "a control character only": ({"entry_id": "gv-topup", "text": "\u001f"}, 422, "a few words saying what is wrong"),
    "text too long": ({"entry_id": "gv-topup", "text": "x" * 2001}, 422, "at most 2000 characters, got 2001"),
    "session id too long": ({"entry_id": "gv-topup", "text": "wrong", "session_id": "s" * 65}, 422, "1 to 64"),
    "not an object": (["gv-topup", "wrong"], 422, "expected an object"),
}


@pytest.mark.parametrize("name", list(REPORT_BAD))
def test_a_bad_report_gets_a_json_4xx_and_keeps_nothing(client, store, name):
    body, status, words = REPORT_BAD[name]
    response = client.post("/v1/report", json=body)
    assert response.status_code == status and words in response.json()["error"], response.text
    assert queries.open_reports(store).empty


def test_the_documented_report_body_refuses_what_the_server_calls_blank(client):
    """JSON Schema's \\S and Python's str.strip() disagree on a few characters: the schema spells its own out."""
    import re

    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/report"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    pattern = body["properties"]["text"]["pattern"]
    assert "\\s" not in pattern.lower()  # a shorthand means one thing to JSON Schema's validators, another here
    word = re.compile(pattern)
    assert [hex(ord(c)) for c in map(chr, range(0x10000)) if (not c.strip()) == bool(word.search(c))] == []


def test_a_report_to_a_server_without_a_store_is_refused_plainly(tiny_assistant, tmp_path):
    with TestClient(create_app(tiny_assistant, None)) as c:
        response = c.post("/v1/report", json={"entry_id": "gv-topup", "text": "wrong"})
        assert response.status_code == 503 and "keeps no reports" in response.json()["error"]
    (tmp_path / "file").write_text("not a folder")
    away = FeedbackStore(tmp_path / "file" / "feedback.sqlite3")  # its database can never be written
    with TestClient(create_app(tiny_assistant, away)) as c:
        response = c.post("/v1/report", json={"entry_id": "gv-topup", "text": "wrong"})
        assert response.status_code == 200 and response.json()["status"] == "queued"
    assert away.queued == 1  # kept in memory for when the database comes back
    away.close()


def test_the_documented_answer_is_the_one_written(client, tiny_kb):
    spec = client.get("/openapi.json").json()
    written = client.post("/v1/ask", json=QUESTIONS[0]).json()
    assert set(AskResponse.model_fields) == set(written)
    assert set(Hit.model_fields) == set(written["hits"][0])
    body = spec["paths"]["/v1/ask"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["question"]
    assert body["properties"]["provider"]["anyOf"][0]["enum"] == list(tiny_kb.providers)
    assert body["properties"]["topic"]["anyOf"][0]["enum"] == list(tiny_kb.topics)
    assert {"200", "400", "413", "422"} <= set(spec["paths"]["/v1/ask"]["post"]["responses"])
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text and "cdn." not in page.text  # works offline


def test_request_module_examples():
    assert doctest.testmod(request_module).failed == 0


# -- generated requests against the API's own OpenAPI description ---------------------------------
# schemathesis' own pytest loader (`from_fixture`) does not run under pytest 9, so each operation's
# strategy is driven by Hypothesis here.
@pytest.mark.parametrize(("method", "path", "mode"), [
    ("POST", "/v1/ask", GenerationMode.POSITIVE), ("POST", "/v1/ask", GenerationMode.NEGATIVE),
    ("POST", "/v1/report", GenerationMode.POSITIVE), ("POST", "/v1/report", GenerationMode.NEGATIVE),
    ("GET", "/healthz", GenerationMode.POSITIVE), ("GET", "/v1/providers", GenerationMode.POSITIVE)])
def test_api_holds_to_its_openapi_description(tiny_assistant, store, method, path, mode):
    """Valid requests are answered in the documented shape; invalid ones get a documented 4xx; never a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(tiny_assistant, store))
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=50 if method == "POST" else 5, deadline=None, suppress_health_check=list(HealthCheck))
    def holds(case):
        case.call_and_validate()

    holds()


# -- the real server, as `python -m retrieval serve` starts it ---------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m retrieval serve` on a free loopback port, with the tiny knowledge base and the fake model;
    one for the module, so tests find their own rows in its store rather than count them."""
    tmp = tmp_path_factory.mktemp("serve")
    shutil.copytree(FIXTURE_KB, tmp / "knowledge")
    for name in ("catalog.yaml", "messages.yaml", "out_of_scope.yaml"):
        shutil.copy(ROOT / "knowledge" / name, tmp / "knowledge" / name)
    with api_server(env={"ASSISTANT_KNOWLEDGE_DIR": str(tmp / "knowledge"), "ASSISTANT_MODEL": "hashing",
                         "ASSISTANT_DATA_DIR": str(tmp / "var")}, timeout=120) as running:
        yield running


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/v1/ask", data=body, method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_over_http_and_logs(server):
    url, db = server.url, server.feedback_db
    status, body = post(url, json.dumps({"question": "GV怎么充值？", "session_id": "serve-test"}).encode())
    assert status == 200 and body["provider"] == "google_voice" and body["answered"] is True
    status, body = post(url, b'{"question": "hi", "provider": "nope", "session_id": "serve-test"}')
    assert status == 422 and "unknown provider" in body["error"]
    rows = queries.export_rows(FeedbackStore(db))
    assert list(rows[rows["session_id"] == "serve-test"]["question"]) == ["GV怎么充值？"]


def test_serve_refuses_a_declared_huge_body_without_waiting_for_it(server):
    """A Content-Length of 1 GB with no body sent: 413 at once, not a read that waits for a gigabyte."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n{")
        reply = b""
        while b'"}' not in reply and (piece := s.recv(4096)):
            reply += piece
    assert reply.startswith(b"HTTP/1.1 413") and b'"too large' in reply


def test_concurrent_clients_each_get_their_own_answer(server):
    """64 clients at once through the bench's load client: every request answered, none with another's question."""
    questions = [f"how do i top up google voice, question {n}" for n in range(128)]
    result = run_load(server, [{"question": q, "provider": None, "session_id": "load-test"} for q in questions],
                      clients=64, deadline_s=120)
    assert result.failures == {} and result.answered == result.sent == len(questions)
    assert result.server_cpu_s is not None and result.server_cpu_s > 0
    rows = queries.export_rows(FeedbackStore(server.feedback_db))
    assert sorted(rows[rows["session_id"] == "load-test"]["question"]) == sorted(questions)


def test_the_bench_reports_each_level_beside_the_engine():
    engine = Latency("engine", "Assistant.ask in-process, one at a time", (10.0, 11.0, 12.0, 30.0))
    levels = [LoadResult(1, 4, 4, {}, 0.1, (12.0, 13.0, 14.0, 40.0), 0.06, 0.01),
              LoadResult(64, 4, 3, {"HTTP 503": 1}, 0.2, (100.0, 200.0, 300.0), 0.05, None)]
    lines = render_api(ApiBench(engine, 20.0, {1: 80.0, 4: 150.0}, levels, workers=4, server_rss_mb=700.0))
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith("| engine") and "| 20.0 |" in rows[1]
    assert rows[2].startswith("| 1 | 4 / 4 | 40.0 |") and "| 15.0 |" in rows[2] and rows[2].endswith("| none |")
    assert rows[3].startswith("| 64 | 3 / 4 | 15.0 |") and rows[3].endswith("| 0.10 | HTTP 503: 1 |")  # ÷ 150/s
    assert any("4 threads: 150.0/s" in line for line in lines) and any("700 MiB" in line for line in lines)


# -- the real model ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_client(real_assistant, tmp_path_factory):
    store = FeedbackStore(tmp_path_factory.mktemp("api") / "feedback.sqlite3")
    with TestClient(create_app(real_assistant, store)) as c:
        yield c, store


@pytest.mark.model
@pytest.mark.parametrize(("request_body", "provider", "topic", "answered"), [
    ({"question": "GV怎么充值？", "provider": None}, "google_voice", "topup_steps", True),
    ({"question": "how do I renew Mint", "provider": None}, "mint_mobile", None, True),
    ({"question": "明天纽约天气怎么样", "provider": None}, None, None, False),
    ({"question": "怎么充值", "provider": "tello"}, "tello", "topup_steps", True),
    ({"question": "my card keeps getting declined", "provider": "t_mobile_prepaid"}, "t_mobile_prepaid",
     "payment_failed", True),
])
def test_real_model_over_http(real_client, request_body, provider, topic, answered):
    client, store = real_client
    response = client.post("/v1/ask", json=request_body)
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == provider and body["answered"] is answered, body["answer"][:300]
    if topic:
        assert body["topic"] == topic and body["hits"][0]["topic"] == topic
    assert len(body["hits"]) >= 3
    row = queries.export_rows(store).iloc[-1]
    assert row["question"] == body["question"] and row["kind"] == body["kind"] and row["answered"] == answered


@pytest.mark.model
@pytest.mark.parametrize(("first", "follow_up", "provider", "topic"), [
    ("GV怎么充值？", "那 Mint 呢", "mint_mobile", "topup_steps"),
    ("how do I get a refund from Google Voice", "what about Tello?", "tello", "refund"),
])
def test_real_model_keeps_the_topic_the_client_sends_back(real_client, first, follow_up, provider, topic):
    """A client that passes the previous answer's provider and topic back gets "what about X?" answered on topic."""
    client, _ = real_client
    before = client.post("/v1/ask", json={"question": first}).json()
    assert before["topic"] == topic
    after = client.post("/v1/ask", json={"question": follow_up, "provider": before["provider"],
                                         "topic": before["topic"]}).json()
    assert after["provider"] == provider and after["topic"] == topic and after["answered"] is True
