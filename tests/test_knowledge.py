"""The loader: every kind of mistake is named by file, entry and field; nothing half-loaded."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from retrieval.knowledge import KnowledgeError, load_knowledge, older_than_years, parse_source
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


# -- comments YAML swallows ---------------------------------------------------------------------
def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_plain_value_cut_at_hash_is_refused(kb_dir):
    # YAML reads this as "Dial" plus a comment: users would see half a sentence
    replace_line(kb_dir / "tello.yaml", "en: Text ADD10PAYG to 800.", "en: Dial #225# to see the balance.")
    errors = errors_for(kb_dir)
    assert any(e.startswith("tello.yaml: tello-topup: answer.en: YAML read 'Dial' and dropped") for e in errors), errors


def test_a_comment_line_inside_an_entry_is_refused(kb_dir):
    replace_line(kb_dir / "tello.yaml", "    links:\n", "    # see the PAYG page\n    links:\n")
    errors = errors_for(kb_dir)
    assert any(e.startswith("tello.yaml: tello-topup: ") and "comment" in e for e in errors), errors


def test_quoted_hash_and_comments_between_entries_are_fine(kb_dir):
    replace_line(kb_dir / "tello.yaml", "en: Text ADD10PAYG to 800.", 'en: "Dial #225# to see the balance."')
    replace_line(kb_dir / "general.yaml", "  - id: gen-declined\n", "  # ---- payment_failed\n  - id: gen-declined\n")
    kb = load_knowledge(kb_dir)
    assert kb.by_id["tello-topup"].answer["en"] == "Dial #225# to see the balance."


def test_the_real_knowledge_has_no_value_cut_at_hash(real_kb):
    # the T-Mobile balance code once read "在 My T-Mobile 或拨"; every '#' now survives
    tmo = real_kb.by_id["tmo-topup-steps"].steps
    assert tmo["zh"][-1].do.endswith("核对余额是否已到账。") and "#BAL#" in tmo["en"][-1].do
    assert "#BAL# (#225#)" in real_kb.by_id["tmo-confirm"].title["en"]


# -- dated sources ------------------------------------------------------------------------------
@pytest.mark.parametrize("source", [
    "https://tello.com/help_center (official, undated)",
    "https://community.visible.com/t5/x (official community, 2022-08-15)",
    "https://github.com/ssnhd/googlevoice (reseller, 2023-10)",
    "http://news.example.com/a (third-party, 2024)",
])
def test_source_grammar_accepts(source):
    assert parse_source(source) is not None


@pytest.mark.parametrize("source", [
    "https://tello.com/help_center (3rd-party, undated)",         # old spelling of the kind
    "https://tello.com/help_center (official, older versions)",   # not a date
    "https://tello.com/help_center (official, updated 2019-12-10)",
    "https://tello.com/help_center (official, 2026-02-30)",       # no such day
    "https://tello.com/help_center (official, 2026-13)",
    "https://tello.com/help_center",
    "tello.com (official, undated)",
])
def test_source_grammar_rejects(kb_dir, source):
    assert parse_source(source) is None
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(sources=[source]))
    errors = errors_for(kb_dir)
    assert any(e.startswith("tello.yaml: tello-topup: sources[0]: ") and "<url> (<kind>, <date>)" in e
               for e in errors), errors


@pytest.mark.parametrize("date, old", [("2018-10-17", True), ("2024-11", True), ("2024-12-02", False),
                                       ("2024", False), ("2023", True), ("undated", False)])
def test_a_page_is_old_only_when_it_certainly_is(date, old):
    # two years before 2026-12-01 is 2024-12-01; "2024" may mean 31 December 2024, so it is not yet old
    assert older_than_years(date, 2, dt.date(2026, 12, 1)) is old


def test_oldest_source_of_an_entry(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["entries"][0].update(sources=[
        "https://tello.com/a (official, undated)", "https://tello.com/b (official, 2019-12)",
        "https://x.example/c (third-party, 2018-10-17)"]))
    assert load_knowledge(kb_dir).by_id["tello-topup"].oldest_source().date == "2018-10-17"


def test_provider_domains(kb_dir):
    edit(kb_dir / "tello.yaml", lambda d: d["provider"].update(domains=["tello.com"]))
    tello = load_knowledge(kb_dir).providers["tello"]
    assert tello.owns("https://tello.com/help_center") and tello.owns("https://www.tello.com/x")
    assert not tello.owns("https://nottello.com/") and not tello.owns("https://support.google.com/")
    edit(kb_dir / "tello.yaml", lambda d: d["provider"].update(domains=["https://tello.com"]))
    assert any(e.startswith("tello.yaml: provider: provider.domains[0]: ") for e in errors_for(kb_dir))


def test_real_providers_declare_their_domains(real_kb):
    assert all(p.domains for p in real_kb.providers.values() if p.id != "general")
    assert all(p.owns(p.support_url) for p in real_kb.providers.values() if p.id != "general")


def test_unknown_key_names_the_allowed_keys(kb_dir):
    edit(kb_dir / "google_voice.yaml", lambda d: d["entries"][0]["links"][0].update(href="x"))
    assert any(e.startswith("google_voice.yaml: gv-topup: links[0].href: unknown key (allowed: title, url)")
               for e in errors_for(kb_dir))


# -- knowledge/learned/: questions from the inbox, read by the same strict loader (issue 15) -------------
def learned(kb_dir: Path, doc: dict | str, name: str = "20261201-100000-attach-gv-topup-g-1.yaml") -> Path:
    folder = kb_dir / "learned"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


ATTACH = {"action": "attach", "by": "Ann", "at": "2026-12-01T10:00:00Z", "group": "g-1", "entry": "gv-topup",
          "questions": {"zh": ["GV 怎么喂钱"], "en": ["how do i feed my gv"]}}


def test_learned_phrasings_join_their_entry_and_change_the_digest(kb_dir):
    before = load_knowledge(kb_dir)
    learned(kb_dir, ATTACH)
    kb = load_knowledge(kb_dir)
    assert kb.by_id["gv-topup"].questions["zh"] == (*before.by_id["gv-topup"].questions["zh"], "GV 怎么喂钱")
    assert kb.by_id["gv-topup"].learned == {"zh": ("GV 怎么喂钱",), "en": ("how do i feed my gv",)}
    assert kb.digest != before.digest


@pytest.mark.parametrize(("change", "expected"), [
    ({"answer": {"zh": "没有来源的答案", "en": "an unsourced answer"}}, "answer: unknown key (allowed: action,"),
    ({"action": "rewrite"}, "action: 'rewrite' is not one of"),
    ({"entry": None}, "entry: attach needs the id of the entry"),
    ({"action": "out_of_scope"}, "entry: questions to decline belong to no entry"),
    ({"questions": {"zh": [], "en": []}}, "questions: expected at least one question"),
    ({"entry": "gv-nope"}, "entry: unknown entry id 'gv-nope'"),
    ({"by": " "}, "by: empty text"),
])
def test_a_learned_file_is_refused_naming_the_file_and_field(kb_dir, change, expected):
    learned(kb_dir, {**ATTACH, **change})
    errors = errors_for(kb_dir)
    assert any(e.startswith("learned/20261201-100000-attach-gv-topup-g-1.yaml: ") and expected in e for e in errors), \
        errors


def test_a_question_both_attached_and_declined_is_refused(kb_dir):
    declined = load_knowledge(kb_dir).off_topic["en"][0]
    learned(kb_dir, {**ATTACH, "questions": {"en": [declined.upper()]}})
    assert any("is also a question to decline" in e for e in errors_for(kb_dir))


def test_a_learned_file_that_is_not_yaml_is_named(kb_dir):
    learned(kb_dir, "action: [attach\n")
    assert any(e.startswith("learned/20261201-100000-attach-gv-topup-g-1.yaml: -: -: invalid YAML")
               for e in errors_for(kb_dir))


def test_drafts_are_never_read(kb_dir):
    before = load_knowledge(kb_dir)
    (kb_dir / "drafts").mkdir()
    (kb_dir / "drafts" / "new.yaml").write_text("provider: TODO\nentries:\n- id: TODO\n", encoding="utf-8")
    assert load_knowledge(kb_dir).digest == before.digest


def test_learned_keys_come_last_so_written_ones_keep_their_place(kb_dir):
    from retrieval.serving.chunks import KeyKind, make_keys

    before = make_keys(load_knowledge(kb_dir))
    learned(kb_dir, ATTACH)
    learned(kb_dir, {"action": "out_of_scope", "by": "Ann", "at": "2026-12-01T10:00:00Z", "group": "g-2",
                     "questions": {"en": ["what is the weather on mars"]}}, name="20261201-1-out-of-scope-g-2.yaml")
    after = make_keys(load_knowledge(kb_dir))
    assert after[:len(before)] == before
    assert [(k.entry_id, k.kind, k.text) for k in after[len(before):]] == [
        ("gv-topup", KeyKind.QUESTION, "怎么喂钱"), ("gv-topup", KeyKind.QUESTION, "how do i feed my"),
        ("", KeyKind.OFF_TOPIC, "what is the weather on mars")]


def test_short_name_drops_the_bracketed_explanation():
    kb = load_knowledge(ROOT / "knowledge")
    assert kb.providers["tello"].short_name("zh") == "Tello"
    assert kb.providers["att_prepaid"].short_name("zh") == "AT&T Prepaid"
    assert kb.providers["ringcentral"].short_name("en") == "RingCentral"
    assert kb.providers["us_mobile"].short_name("zh") == "US Mobile"


# -- topic examples: questions labelled with their topic only ----------------------------------------------
def write_examples(kb_dir: Path, examples: list[dict]) -> None:
    (kb_dir / "topic_examples.yaml").write_text(yaml.safe_dump({"examples": examples}, allow_unicode=True),
                                                encoding="utf-8")


def test_topic_examples_are_read_with_their_provider_and_topic(kb_dir):
    before = load_knowledge(kb_dir).digest
    write_examples(kb_dir, [{"q": "gv 充值入口在哪", "provider": "google_voice", "topic": "topup_steps"},
                            {"q": "can I keep my number if I go home for a year", "topic": "expiry"}])
    kb = load_knowledge(kb_dir)
    assert kb.topic_examples == (("gv 充值入口在哪", "google_voice", "topup_steps"),
                                 ("can I keep my number if I go home for a year", "general", "expiry"))
    assert kb.digest != before  # the topic model is refitted when they change
    assert all("gv 充值入口在哪" not in e.questions["zh"] for e in kb.entries)  # never a phrasing


def test_a_topic_example_with_an_unknown_topic_or_provider_is_refused(kb_dir):
    write_examples(kb_dir, [{"q": "where do I pay", "provider": "google_voice", "topic": "paying"},
                            {"q": "where do I pay", "provider": "vodafone", "topic": "topup_steps"},
                            {"q": "", "topic": "topup_steps"}])
    errors = errors_for(kb_dir)
    assert any(e.startswith("topic_examples.yaml") and "unknown topic 'paying'" in e for e in errors), errors
    assert any(e.startswith("topic_examples.yaml") and "'vodafone' is not a provider id" in e for e in errors)
    assert len([e for e in errors if e.startswith("topic_examples.yaml")]) == 3, errors


# -- other_services.yaml -------------------------------------------------------------------------------------
def write_other_services(kb_dir: Path, services: list[dict]) -> None:
    (kb_dir / "other_services.yaml").write_text(
        yaml.safe_dump({"checked": dt.date(2026, 12, 2), "other_services": services}, allow_unicode=True),
        encoding="utf-8")


def test_other_services_are_read_with_their_names(kb_dir):
    write_other_services(kb_dir, [{"name": "中国移动", "en": "China Mobile", "kind": "carrier_outside_us",
                                   "aliases": ["中移动"]}, {"name": "Netflix", "kind": "app"}])
    kb = load_knowledge(kb_dir)
    assert [(s.name, s.named("en"), s.named("zh"), s.aliases) for s in kb.other_services] == [
        ("中国移动", "China Mobile", "中国移动", ("中移动",)), ("Netflix", "Netflix", "Netflix", ())]


def test_an_other_service_named_like_ours_or_twice_is_refused(kb_dir):
    write_other_services(kb_dir, [{"name": "Telo", "kind": "app", "aliases": ["TELLO"]},
                                  {"name": "Netflix", "kind": "app"}, {"name": "Nflx", "kind": "app",
                                                                      "aliases": ["net flix"]}])
    errors = [e for e in errors_for(kb_dir) if e.startswith("other_services.yaml")]
    assert any("'TELLO' names our provider 'tello'" in e for e in errors), errors
    assert any("'net flix' is also 'Netflix'" in e for e in errors), errors


def test_an_other_service_of_an_unknown_kind_is_refused(kb_dir):
    write_other_services(kb_dir, [{"name": "Orange", "kind": "fruit"}])
    errors = errors_for(kb_dir)
    assert any(e.startswith("other_services.yaml") and "'fruit' is not one of" in e for e in errors), errors


def test_us_number_and_phone_words_are_read_in_both_languages(kb_dir):
    (kb_dir / "other_services.yaml").write_text(yaml.safe_dump(
        {"checked": dt.date(2026, 12, 2), "other_services": [{"name": "Netflix", "kind": "app"}],
         "us_number_words": {"zh": ["美国号"], "en": ["us number"]},
         "phone_words": {"zh": ["话费"], "en": ["phone bill"]}}, allow_unicode=True), encoding="utf-8")
    kb = load_knowledge(kb_dir)
    assert (kb.us_number_words, kb.phone_words) == (("美国号", "us number"), ("话费", "phone bill"))


def test_other_topics_and_ours_words_are_read_in_both_languages(kb_dir):
    (kb_dir / "other_services.yaml").write_text(yaml.safe_dump(
        {"checked": dt.date(2026, 12, 2), "other_services": [{"name": "Netflix", "kind": "app"}],
         "other_topics": [{"name": "语音信箱", "en": "voicemail", "words": {"zh": ["语音信箱"], "en": ["voicemail"]}}],
         "ours_words": {"zh": ["充值"], "en": ["top up"]},
         "keep_words": {"zh": ["保号"], "en": ["keep"]},
         "account_words": {"zh": ["登不上"], "en": ["log in"]},
         "takeover_words": {"zh": ["被盗"], "en": ["hacked"]},
         "refused_words": {"zh": ["被拒"], "en": ["declined"]},
         "public_wifi_words": {"zh": ["公共wifi"], "en": ["public wifi"]},
         "paying_words": {"zh": ["充值"], "en": ["pay"]}}, allow_unicode=True), encoding="utf-8")
    kb = load_knowledge(kb_dir)
    assert [(t.named("zh"), t.named("en"), t.words) for t in kb.other_topics] == [
        ("语音信箱", "voicemail", ("语音信箱", "voicemail"))]
    assert (kb.ours_words, kb.keep_words, kb.account_words, kb.refused_words) == (
        ("充值", "top up"), ("保号", "keep"), ("登不上", "log in"), ("被拒", "declined"))
    assert (kb.public_wifi_words, kb.paying_words) == (("公共wifi", "public wifi"), ("充值", "pay"))
    assert kb.takeover_words == ("被盗", "hacked")
    assert kb.providers["tello"].kind == "mvno_prepaid"  # whose account is the line's own (account_words)


def test_an_other_topic_may_need_a_provider_a_second_word_and_its_own_words_of_ours(kb_dir):
    topic = {"name": "验证码", "en": "codes", "words": {"zh": ["收不到"], "en": ["never arrives"]},
             "providers": ["google_voice"], "also": {"zh": ["验证码"], "en": ["code"]},
             "ours": {"zh": ["充值"], "en": ["top up"]}}
    (kb_dir / "other_services.yaml").write_text(yaml.safe_dump(
        {"checked": dt.date(2026, 12, 3), "other_services": [{"name": "Netflix", "kind": "app"}],
         "other_topics": [topic]}, allow_unicode=True), encoding="utf-8")
    [t] = load_knowledge(kb_dir).other_topics
    assert (t.providers, t.also, t.ours) == (("google_voice",), ("验证码", "code"), ("充值", "top up"))
    (kb_dir / "other_services.yaml").write_text(yaml.safe_dump(
        {"checked": dt.date(2026, 12, 3), "other_services": [{"name": "Netflix", "kind": "app"}],
         "other_topics": [{**topic, "providers": ["nope"]}]}, allow_unicode=True), encoding="utf-8")
    assert any("unknown provider 'nope'" in e for e in errors_for(kb_dir))


def test_an_other_topic_needs_its_words(kb_dir):
    (kb_dir / "other_services.yaml").write_text(yaml.safe_dump(
        {"checked": dt.date(2026, 12, 2), "other_services": [{"name": "Netflix", "kind": "app"}],
         "other_topics": [{"name": "语音信箱", "en": "voicemail"}]}, allow_unicode=True), encoding="utf-8")
    errors = [e for e in errors_for(kb_dir) if e.startswith("other_services.yaml")]
    assert errors and "words" in errors[0], errors


def test_other_services_are_optional(kb_dir):
    (kb_dir / "other_services.yaml").unlink()
    assert load_knowledge(kb_dir).other_services == ()


def test_hints_are_read_and_name_no_provider():
    """A provider's `hints` choose it without being its name ("voice credit"): none may be another provider's
    name or alias, or a question would change provider by a word that is not a name."""
    from retrieval.serving.providers import ProviderFinder, compact

    kb = load_knowledge(ROOT / "knowledge")
    assert kb.providers["google_voice"].hints == ("voice credit", "voice app")
    names = {compact(a): p.id for p in kb.providers.values() for a in (*p.aliases, *p.name.values())}
    assert [h for p in kb.providers.values() for h in p.hints if compact(h) in names] == []
    assert all(ProviderFinder(kb).find(h) == p.id for p in kb.providers.values() for h in p.hints)
