"""Chunks: ids come from content, so they are stable across runs and change with the text."""

import datetime as dt
import json

from retrieval.knowledge import load_knowledge
from retrieval.serving.answer import render_chunk
from retrieval.serving.chunks import Chunk, entry_chunk, make_chunks, make_keys


def test_one_chunk_per_entry_and_language(tiny_kb):
    chunks = make_chunks(tiny_kb)
    assert len(chunks) == 2 * len(tiny_kb.entries)
    assert len({c.id for c in chunks}) == len(chunks)


def test_ids_stable_across_loads(kb_dir):
    first = [c.id for c in make_chunks(load_knowledge(kb_dir))]
    second = [c.id for c in make_chunks(load_knowledge(kb_dir))]
    assert first == second


def test_id_changes_only_for_the_edited_entry(kb_dir):
    before = {(c.entry_id, c.language): c.id for c in make_chunks(load_knowledge(kb_dir))}
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("ADD10PAYG 到 800", "ADD20PAYG 到 800"),
                    encoding="utf-8")
    after = {(c.entry_id, c.language): c.id for c in make_chunks(load_knowledge(kb_dir))}
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {("tello-topup", "zh")}


def test_keys_cover_questions_titles_and_answers(tiny_kb):
    keys = [k for k in make_keys(tiny_kb, strip_providers=False) if k.entry_id == "gv-topup"]
    assert {k.kind for k in keys} == {"question", "answer"}
    # normalised as a question is (lower case, Simplified), the vocabulary made canonical
    assert {"gv怎么充值", "gv top up", "add google voice credit"} <= {k.text for k in keys}


def test_keys_have_provider_names_taken_out(tiny_kb):
    texts = {k.text for k in make_keys(tiny_kb) if k.entry_id == "gv-topup" and k.kind == "question"}
    assert {"怎么充值", "top up"} <= texts
    assert "add credit" in texts  # "Add Google Voice credit" with the name out (synonym groups: test_understand)
    assert not any("gv" in t or "google" in t for t in texts)


def test_an_answer_says_when_it_rests_on_a_page_older_than_two_years(kb_dir):
    path = kb_dir / "tello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        '(official, undated)"]', '(official, undated)", "https://x.example/old (third-party, 2018-10-17)"]'),
        encoding="utf-8")
    kb = load_knowledge(kb_dir)
    chunk = entry_chunk(kb.by_id["tello-topup"], "en")
    assert chunk.source_date == "2018-10-17"
    assert Chunk.from_json(json.loads(json.dumps(chunk.to_json()))) == chunk  # stored and read back whole
    note = kb.message("old_source", "en", date="2018-10-17")
    shown = render_chunk(kb, chunk, "en", today=dt.date(2026, 12, 1))
    assert note in shown and shown.index(note) > shown.index(chunk.text)
    assert kb.message("old_source", "zh", date="2018-10-17") in render_chunk(
        kb, entry_chunk(kb.by_id["tello-topup"], "zh"), "zh", today=dt.date(2026, 12, 1))
    # the same page is not "old" in 2019, and an undated page never is
    assert note not in render_chunk(kb, chunk, "en", today=dt.date(2019, 1, 1))
    assert "more than two years old" not in render_chunk(kb, entry_chunk(kb.by_id["gv-topup"], "en"), "en")
