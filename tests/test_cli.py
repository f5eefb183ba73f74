"""The command line follows the contract: check --json, ask --jsonl (one line out per line in, whatever comes in)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.api.request import size_limit
from retrieval.cli import answer_stream, parser, read_lines
from retrieval.settings import ROOT


def run(args: list[str], env: dict, stdin: str = "", timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retrieval", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env}, timeout=timeout)


@pytest.fixture
def env(kb_dir, tmp_path) -> dict:
    return {"ASSISTANT_KNOWLEDGE_DIR": str(kb_dir), "ASSISTANT_MODEL": "hashing",
            "ASSISTANT_DATA_DIR": str(tmp_path / "var")}


def test_ask_jsonl_contract(env):
    lines = [json.dumps({"question": "GV怎么充值？", "provider": None}),
             "this is not json",
             json.dumps({"question": "how do i top up", "provider": "tello"}),
             json.dumps({"question": "my card was declined"}),
             json.dumps({"question": "？？？", "provider": None}),
             json.dumps({"question": "x", "provider": "nobody"})]
    result = run(["ask", "--jsonl"], env, "\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 6
    gv, bad, tello, declined, symbols, unknown = out
    assert gv["language"] == "zh" and gv["provider"] == "google_voice" and gv["answered"] is True
    assert gv["hits"][0]["provider"] == "google_voice" and gv["hits"][0]["topic"] == "topup_steps"
    assert len(gv["hits"]) >= 3 and {"chunk_id", "score", "title", "text"} <= set(gv["hits"][0])
    assert "Add credit" in gv["answer"]
    assert bad == {"error": bad["error"], "line": 2} and "invalid JSON" in bad["error"]
    assert tello["provider"] == "tello" and tello["hits"][0]["provider"] == "tello" and tello["language"] == "en"
    assert declined["hits"][0]["topic"] == "payment_failed"
    assert symbols["answered"] is False
    assert "unknown provider" in unknown["error"] and unknown["line"] == 6


def test_ask_plain_prints_markdown(env):
    result = run(["ask", "gv", "top", "up"], env)
    assert result.returncode == 0 and "**Add Google Voice credit**" in result.stdout


# -- ask --jsonl never stops the stream (issue 12, item 7) -----------------------------------------
GOOD = json.dumps({"question": "GV怎么充值？", "provider": None}).encode()
HOSTILE = {
    "invalid UTF-8": (b'{"question": "\xff\xfe top up"}', "not UTF-8"),
    "a lone surrogate": (b'{"question": "\\ud800"}', "lone surrogate"),
    "a lone surrogate in provider": (b'{"question": "hi", "provider": "\\udfff"}', "unknown provider"),
    "JSON nested 100,000 deep": (b"[" * 100_000, "too large"),
    "JSON nested 5,000 deep, under the size cap": (b"[" * 5_000, "nested too deeply"),
    "an integer of 4,301 digits": (b'{"question": "hi", "provider": ' + b"9" * 4_301 + b"}", "too many digits"),
    "a list as provider": (b'{"question": "hi", "provider": ["google_voice"]}', "must be a string or null"),
    "an object as provider": (b'{"question": "hi", "provider": {"id": "tello"}}', "must be a string or null"),
    "a list as topic": (b'{"question": "hi", "topic": []}', "must be a string or null"),
    "an unknown topic": (b'{"question": "hi", "topic": "weather"}', "unknown topic"),
    "a number as question": (b'{"question": 12}', '"question" must be a string'),
    "no question": (b'{"provider": "tello"}', 'missing "question"'),
    "not an object": ('["GV怎么充值"]'.encode(), "expected an object"),
    "a blank line": (b"", "blank line"),
    "a line of spaces and a carriage return": (b"  \t \r", "blank line"),
    "a line of 1 MB": (b'{"question": "' + b"a" * 1_000_000 + b'"}', "too large"),
}


def stream(assistant, lines: list[bytes]) -> list[dict]:
    out = io.StringIO()
    answer_stream(assistant, io.BytesIO(b"".join(line + b"\n" for line in lines)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_line_gives_one_numbered_error_and_the_stream_goes_on(tiny_assistant, name):
    line, message = HOSTILE[name]
    before, error, after = stream(tiny_assistant, [GOOD, line, GOOD])
    assert set(error) == {"error", "line"} and error["line"] == 2 and message in error["error"], error
    assert before["provider"] == after["provider"] == "google_voice" and after["answered"] is True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([GOOD, *(line for line, _ in HOSTILE.values() if len(line) < 20_000)]),
                max_size=12))
def test_output_line_n_answers_input_line_n(tiny_assistant, lines):
    out = stream(tiny_assistant, lines)
    assert len(out) == len(lines)
    for number, (line, result) in enumerate(zip(lines, out, strict=True), 1):
        assert ("error" in result) == (line != GOOD)
        assert result.get("line", number) == number


def test_a_byte_order_mark_and_windows_line_ends_are_not_errors(tiny_assistant):
    out = stream(tiny_assistant, [b"\xef\xbb\xbf" + GOOD + b"\r", GOOD + b"\r"])
    assert [o["provider"] for o in out] == ["google_voice", "google_voice"]


def test_a_long_line_is_refused_without_being_held(tiny_assistant):
    """The size cap comes before anything else: the reader never asks for more than the limit at once."""
    asked: list[int] = []

    class Recording(io.BytesIO):
        def readline(self, size=-1):
            asked.append(size)
            return super().readline(size)

    limit = size_limit(tiny_assistant.max_chars)
    lines = list(read_lines(Recording(b"x" * 5_000_000 + b"\n" + GOOD + b"\n"), limit))
    assert lines == [None, GOOD]
    assert asked and all(0 < size <= limit + 1 for size in asked)


def test_a_long_question_is_cut_before_it_is_scanned_and_a_card_on_the_cut_still_masked(tiny_assistant):
    question = "how do i top up " + "a" * 470 + " card 4111 1111 1111 1111 " + "b" * 6_000
    (out,) = stream(tiny_assistant, [json.dumps({"question": question}).encode()])
    assert len(out["question"]) == tiny_assistant.max_chars and out["notices"]
    assert "4111" not in out["question"] and "1111" not in out["question"]


def test_stdin_bytes_that_are_not_json_lines_never_stop_the_command(env):
    lines = [GOOD, b"", b'{"question": "\xff"}', b'{"question": "\\ud83d"}', b"[" * 100_000,
             b'{"question": "x", "provider": ' + b"1" * 4_400 + b"}", b'{"question": "x", "provider": [1]}',
             b'{"question": "x", "provider": {}}', b"   \r", b'{"question": "how do i top up", "provider": "tello"}']
    result = subprocess.run([sys.executable, "-m", "retrieval", "ask", "--jsonl"], input=b"\n".join(lines),
                            capture_output=True, cwd=ROOT, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr[-2000:]
    out = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert len(out) == len(lines)
    assert [o.get("line") for o in out] == [None, *range(2, len(lines)), None]
    assert out[0]["provider"] == "google_voice" and out[-1]["provider"] == "tello"


def test_a_closed_pipe_ends_the_stream_quietly(env):
    """`ask --jsonl ... | head -1`: the reader leaves after one line; no BrokenPipeError, exit 0."""
    process = subprocess.Popen([sys.executable, "-m", "retrieval", "ask", "--jsonl"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, **env})
    process.stdin.write(GOOD + b"\n")
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["provider"] == "google_voice"
    process.stdout.close()  # as head does once it has its line
    process.stdin.write(GOOD + b"\n" + GOOD + b"\n")
    process.stdin.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr


def test_unknown_provider_option_is_refused_like_an_unknown_provider_in_json(env):
    result = run(["ask", "--provider", "nope", "how", "do", "i", "top", "up"], env)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert "unknown provider 'nope'" in result.stderr and "google_voice" in result.stderr


def test_plain_ask_reads_bytes_that_are_not_utf8(env):
    result = subprocess.run([sys.executable, "-m", "retrieval", "ask"], input=b"gv top up \xff\xfe",
                            capture_output=True, cwd=ROOT, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr[-2000:]
    assert "**Add Google Voice credit**" in result.stdout.decode()


def test_serve_with_broken_knowledge_says_so_and_never_opens_the_port(env, kb_dir):
    (kb_dir / "tello.yaml").write_text("provider: [", encoding="utf-8")
    result = run(["serve", "--port", "1"], env)  # port 1 would fail to bind: loading must fail first
    assert result.returncode == 1 and "tello.yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_serve_refuses_a_port_that_is_not_one(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["serve", "--port", port])
    assert exit_info.value.code == 2 and "port number from 1 to 65535" in capsys.readouterr().err


def test_a_data_folder_that_cannot_be_written_answers_but_prepare_fails(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**env, "ASSISTANT_DATA_DIR": str(blocker)}
    asked = run(["ask", "gv", "top", "up"], env)
    assert asked.returncode == 0 and "**Add Google Voice credit**" in asked.stdout  # from the index in memory
    assert asked.stderr.count("from memory") == 1 and "previous index" not in asked.stderr
    prepared = run(["prepare"], env)
    assert prepared.returncode == 1 and "could not be saved" in prepared.stderr  # preparing is saving
    # (jieba logs its own traceback when it cannot write its cache there; none may come from ours)
    assert f'File "{ROOT / "retrieval"}' not in prepared.stderr + asked.stderr


def test_check_json_ok_on_fixture_shape(env):
    result = run(["check", "--json"], env)
    report = json.loads(result.stdout)
    assert {"ok", "errors", "entries"} <= set(report)  # the contract's fields; more may follow
    gv_amount = next(e for e in report["entries"] if e["id"] == "gv-amount")
    assert {"id": "gv-amount", "provider": "google_voice", "topic": "amount", "languages": ["zh", "en"],
            "checked": "2026-11-29"}.items() <= gv_amount.items()
    # the tiny fixture does not cover every required cell, so check says so and exits 1
    assert report["ok"] is False and result.returncode == 1
    assert any("tello/refund" in e for e in report["errors"])


def test_check_reports_broken_file(env, kb_dir):
    (kb_dir / "tello.yaml").write_text("provider: {id: tello}\nentries: []\n", encoding="utf-8")
    result = run(["check", "--json"], env)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and report["entries"] == []
    assert any(e.startswith("tello.yaml: ") for e in report["errors"])


def test_check_warns_about_entries_not_checked_for_180_days(env, kb_dir):
    old = (dt.date.today() - dt.timedelta(days=200)).isoformat()
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("checked: 2026-11-29", f"checked: {old}"),
                    encoding="utf-8")
    report = json.loads(run(["check", "--json"], env).stdout)
    assert any(w.startswith(f"tello.yaml: tello-topup: checked: last checked {old}, 200 days ago")
               for w in report["warnings"])
    assert not any("tello-topup" in e for e in report["errors"])
    strict = json.loads(run(["check", "--json", "--strict"], env).stdout)
    assert any(e.startswith("tello.yaml: tello-topup: checked: ") for e in strict["errors"])
    assert strict["warnings"] == []
    text = run(["check"], env).stdout
    assert f"warning: tello.yaml: tello-topup: checked: last checked {old}" in text


def test_check_lists_sources_off_the_providers_domains(env, kb_dir):
    path = kb_dir / "tello.yaml"
    support = "support_url: https://tello.com/help_center"
    text = path.read_text(encoding="utf-8").replace(support, f"{support}\n  domains: [tello.com]")
    elsewhere = "https://support.google.com/store/answer/6160259 (official, undated)"
    text = text.replace('sources: ["', f'sources: ["{elsewhere}", "', 1)
    path.write_text(text, encoding="utf-8")
    report = json.loads(run(["check", "--json"], env).stdout)
    assert report["off_domain"] == [{"provider": "tello", "entry": "tello-topup", "source": elsewhere}]
    assert f"tello: {elsewhere} <- tello-topup" in run(["check"], env).stdout


def test_check_refuses_a_value_cut_at_hash(env, kb_dir):
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("en: Text ADD10PAYG to 800.", "en: Dial #225# now."),
                    encoding="utf-8")
    result = run(["check", "--json"], env)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and any(e.startswith("tello.yaml: tello-topup: answer.en: YAML read 'Dial'")
                                          for e in report["errors"])


def test_ask_with_broken_knowledge_says_so(env, kb_dir):
    (kb_dir / "tello.yaml").write_text("provider: [", encoding="utf-8")
    result = run(["ask", "hello"], env)
    assert result.returncode == 1 and "tello.yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.model
def test_real_check_passes():
    result = run(["check"], {})
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.model
def test_real_ask_jsonl_loads_model_once():
    questions = ["GV怎么充值？", "how do I renew Mint", "明天纽约天气怎么样"]
    stdin = "\n".join(json.dumps({"question": q, "provider": None}) for q in questions) + "\n"
    result = run(["ask", "--jsonl"], {}, stdin, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    gv, mint, weather = (json.loads(line) for line in result.stdout.splitlines())
    assert gv["provider"] == "google_voice" and gv["hits"][0]["topic"] == "topup_steps"
    assert mint["provider"] == "mint_mobile"
    assert weather["answered"] is False


def test_eval_json_prints_one_object_as_check_json_does(env, tmp_path):
    """`--json` means the same on both commands: the numbers as one JSON object on standard output."""
    questions = tmp_path / "dev.yaml"
    questions.write_text(
        "questions:\n"
        "  - {q: GV怎么充值, lang: zh, kind: plain, expect: [google_voice/topup_steps]}\n"
        "  - {q: google voice maximum balance, lang: en, kind: plain, expect: [google_voice/amount]}\n"
        "  - {q: how do i cook rice, lang: en, kind: out_of_scope, expect: out_of_scope}\n", encoding="utf-8")
    saved = tmp_path / "numbers.json"
    args = ["eval", "--set", str(questions), "--no-test", "--no-baselines", "--save", str(saved)]
    result = run([*args, "--json"], env, timeout=300)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)  # the whole of standard output: no Markdown around it
    assert numbers == json.loads(saved.read_text(encoding="utf-8"))
    assert {"overall", "dev", "dev_sets"} <= set(numbers) and "test" not in numbers
    assert numbers["dev_sets"]["dev.yaml"] == numbers["dev"]
    # The typos row: only the question with Latin words of five letters or more gets one.
    assert numbers["dev_typos"]["n"] == 1 and numbers["dev_typos"]["in_scope"] == 1
    markdown = run(args, env, timeout=300)
    assert markdown.returncode == 0 and markdown.stdout.startswith("## Development and test sets")
    assert "dev with typos injected (seeded) | 1 |" in markdown.stdout
    refused = run(["eval", "--json", "--ablation"], env)
    assert refused.returncode == 2 and "--ablation" in refused.stderr


def test_eval_writes_each_answer_and_compares_with_an_earlier_run(env, tmp_path):
    """`--answers` writes every development question's answer (never the test set's); `--compare` lists the
    questions gained and lost against such a file, so a change is judged question by question."""
    questions = tmp_path / "dev.yaml"
    questions.write_text(
        "questions:\n"
        "  - {q: GV怎么充值, lang: zh, kind: plain, expect: [google_voice/topup_steps]}\n"
        "  - {q: how do i cook rice, lang: en, kind: out_of_scope, expect: out_of_scope}\n", encoding="utf-8")
    answers = tmp_path / "answers.json"
    args = ["eval", "--set", str(questions), "--no-test", "--no-baselines"]
    first = run([*args, "--answers", str(answers)], env, timeout=300)
    assert first.returncode == 0, first.stderr
    written = json.loads(answers.read_text(encoding="utf-8"))
    assert set(written) == {"dev.yaml|GV怎么充值|", "dev.yaml|how do i cook rice|"}
    assert all({"kind", "labels", "rank", "right"} <= set(a) for a in written.values())
    # an earlier run that got the first question the other way round
    earlier = tmp_path / "earlier.json"
    key = "dev.yaml|GV怎么充值|"
    earlier.write_text(json.dumps({**written, key: {**written[key], "right": not written[key]["right"]}}),
                       encoding="utf-8")
    second = run([*args, "--compare", str(earlier)], env, timeout=300)
    assert second.returncode == 0, second.stderr
    word = "gained" if written[key]["right"] else "lost"
    assert f"2 questions in both: {int(word == 'gained')} gained, {int(word == 'lost')} lost" in second.stdout
    assert f"- {word} (dev.yaml): 'GV怎么充值'" in second.stdout


def test_eval_refuses_a_compare_file_it_did_not_write_before_scoring(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}', encoding="utf-8")
    for path in (bad, tmp_path / "missing.json"):
        result = run(["eval", "--no-test", "--no-baselines", "--compare", str(path)], env, timeout=120)
        assert result.returncode == 2 and f"error: --compare {path}" in result.stderr
        assert "Development" not in result.stdout  # nothing was scored
