"""The command line follows the contract: check --json, ask --jsonl (one line out per line in)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

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
    assert set(bad) == {"error"} and "invalid JSON" in bad["error"]
    assert tello["provider"] == "tello" and tello["hits"][0]["provider"] == "tello" and tello["language"] == "en"
    assert declined["hits"][0]["topic"] == "payment_failed"
    assert symbols["answered"] is False
    assert "unknown provider" in unknown["error"]


def test_ask_plain_prints_markdown(env):
    result = run(["ask", "gv", "top", "up"], env)
    assert result.returncode == 0 and "**Add Google Voice credit**" in result.stdout


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
