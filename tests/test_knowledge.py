"""The loader: every kind of mistake is named by file, entry and field; nothing half-loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from retrieval.knowledge import KnowledgeError, load_knowledge
from retrieval.settings import ROOT


def edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def errors_for(kb_dir: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(kb_dir)
    return info.value.errors


def test_fixture_loads(tiny_kb):
    assert {e.id for e in tiny_kb.entries} == {"gen-topup", "gen-declined", "gen-scam", "gv-topup", "gv-amount",
                                               "tello-topup"}
    assert tiny_kb.by_id["gv-topup"].steps["en"][1].do == "Click Settings → Payments → Add credit."


def test_unknown_key(kb_dir):
    edit(kb_dir / "google_voice.yaml", lambda d: d["entries"][0].update(colour="blue"))
    assert any(e.startswith("google_voice.yaml: gv-topup: colour: unknown key") for e in errors_for(kb_dir))


def test_missing_language(kb_dir):
    edit(kb_dir / "google_voice.yaml", lambda d: d["entries"][1]["answer"].pop("en"))
    assert "google_voice.yaml: gv-amount: answer.en: missing language" in errors_for(kb_dir)


def test_unknown_provider(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["provider"].update(id="telo"))
    assert any(e.startswith("tello.yaml: provider: provider.id: unknown provider 'telo'") for e in errors_for(kb_dir))


def test_unknown_topic(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(topic="prices"))
    assert "tello.yaml: tello-topup: topic: unknown topic 'prices'" in errors_for(kb_dir)


def test_duplicate_id(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(id="gv-topup"))
    assert any("gv-topup: id: duplicate id" in e for e in errors_for(kb_dir))


def test_empty_text(kb_dir):
    edit(kb_dir / "general.yaml", lambda d: d["entries"][1]["title"].update(zh="  "))
    assert "general.yaml: gen-declined: title.zh: empty text" in errors_for(kb_dir)


def test_empty_step_list(kb_dir):
    edit(kb_dir / "general.yaml", lambda d: d["entries"][0]["steps"].update(en=[]))
    assert "general.yaml: gen-topup: steps.en: empty step list" in errors_for(kb_dir)


def test_steps_differ_between_languages(kb_dir):
    edit(kb_dir / "general.yaml", lambda d: d["entries"][0]["steps"]["en"].pop())
    assert "general.yaml: gen-topup: steps: the languages have different numbers of steps" in errors_for(kb_dir)


def test_bad_date_and_link(kb_dir):
    def change(d):
        d["entries"][0]["checked"] = "last week"
        d["entries"][0]["links"][0]["url"] = "http://insecure.example"
    edit(kb_dir / "tello.yaml", change)
    errs = errors_for(kb_dir)
    assert any(e.startswith("tello.yaml: tello-topup: checked: expected a date") for e in errs)
    assert any(e.startswith("tello.yaml: tello-topup: links[0].url: not an https URL") for e in errs)


def test_invalid_yaml_names_line(kb_dir):
    (kb_dir / "tello.yaml").write_text("provider: [unclosed\n", encoding="utf-8")
    assert any(re.match(r"tello\.yaml: -: -: invalid YAML at line \d+", e) for e in errors_for(kb_dir))


def test_all_errors_reported_at_once(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(topic="prices"))
    edit(kb_dir / "google_voice.yaml", lambda d: d["entries"][0].update(colour="blue"))
    assert len(errors_for(kb_dir)) >= 2


def test_unknown_related_entry(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(related=["nope"]))
    assert "tello.yaml: tello-topup: related: unknown entry id 'nope'" in errors_for(kb_dir)


def test_digest_changes_with_content(kb_dir):
    before = load_knowledge(kb_dir).digest
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0]["answer"].update(en="Text ADD20PAYG to 800."))
    assert load_knowledge(kb_dir).digest != before


# -- the real knowledge base -------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_kb():
    return load_knowledge(ROOT / "knowledge")


def test_real_knowledge_covers_every_required_cell(real_kb):
    assert real_kb.missing_cells() == []


def test_real_knowledge_has_every_contract_provider(real_kb):
    contract = ["general", "google_voice", "skype", "ringcentral", "nextiva", "t_mobile_prepaid", "mint_mobile",
                "us_mobile", "ultra_mobile", "tello", "lycamobile", "h2o_wireless", "att_prepaid",
                "verizon_prepaid", "cricket", "visible"]
    assert list(real_kb.providers) == contract
    assert all(real_kb.providers[p].aliases for p in contract if p != "general")


def test_real_entries_are_bilingual_and_dated(real_kb):
    for e in real_kb.entries:
        assert set(e.answer) == {"zh", "en"}, e.id
        assert len(e.questions["zh"]) >= 3 and len(e.questions["en"]) >= 3, e.id
        assert e.checked.year >= 2026, e.id
        assert e.links and e.sources, e.id


PROMOTIONAL = re.compile(r"t\.me/|telegram\.me|esim1088|postimg\.cc|wa\.me/", re.I)


def test_no_promotional_links():
    for path in (ROOT / "knowledge").glob("*.yaml"):
        assert not PROMOTIONAL.search(path.read_text(encoding="utf-8")), path.name
