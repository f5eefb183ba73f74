"""The operator's loop (retrieval/learn): grouping the inbox, writing actions as knowledge files, measuring them on a
copy, switching the serving assistant, and the `inbox` command line. Offline: the tiny knowledge base and the
hashing embedder (the real model's end-to-end run is in test_browser_inbox.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from retrieval.build.index import build_index, save_index
from retrieval.knowledge import KnowledgeError, digest_of, load_knowledge
from retrieval.learn.effect import Evaluator, SeededEmbedder, measure
from retrieval.learn.files import Action, patch, render, save, write
from retrieval.learn.inbox import Group, Item, cluster, find, gather, group, reader, wording
from retrieval.learn.live import Live, StaleEffect, file_action
from retrieval.learn.views import effect_table, entry_choices, group_rows
from retrieval.serving.assistant import Assistant
from retrieval.serving.embedder import HashingEmbedder
from retrieval.settings import ROOT, Settings
from retrieval.store import queries
from retrieval.store.feedback import FeedbackStore

FEED = ["how do i feed my gv", "How do I feed my GV", "how do i feed my google voice"]
CARD = "4539 1488 0343 6467"


def item(n: int, question: str, reason: str = "declined", session: str | None = None, **overrides) -> Item:
    fields = dict(interaction_id=n, asked_at=f"2026-12-01T10:00:{n:02d}.000+00:00", session_id=session or f"s{n}",
                  question=question, language="en", provider=None, kind="decline", entry_id=None, offered=(),
                  reason=reason)
    return Item(**{**fields, **overrides})


def log(store: FeedbackStore, assistant: Assistant, question: str, session: str = "s") -> int:
    """Ask and keep it, as the chat page does."""
    answer = assistant.ask(question)
    return store.log_interaction(session_id=session, question=answer.question, language=answer.language,
                                 provider=answer.provider, kind=answer.kind.value, entry_id=answer.entry_id,
                                 topic=answer.topic, answered=answer.answered,
                                 score=answer.hits[0].score if answer.hits else None, offered=answer.hits)


@pytest.fixture
def store(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    yield store
    store.close()


@pytest.fixture
def sets(tmp_path) -> tuple[Path, Path]:
    """A development set and a test set for the tiny knowledge base."""
    def write_set(name: str, questions: list[tuple[str, str, object]]) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"questions": [{"q": q, "lang": lang, "kind": "plain", "expect": expect}
                                                      for q, lang, expect in questions]}, allow_unicode=True))
        return path

    dev = write_set("dev.yaml", [("GV怎么充值", "zh", ["google_voice/topup_steps"]),
                                 ("tello top up", "en", ["tello/topup_steps"]),
                                 ("my card was declined", "en", ["general/payment_failed"]),
                                 ("what is the weather today", "en", "out_of_scope")])
    test = write_set("test.yaml", [("gv top up", "en", ["google_voice/topup_steps"]),
                                   ("can I buy bitcoin", "en", "out_of_scope")])
    return dev, test


# -- grouping --------------------------------------------------------------------------------------------
def test_the_same_question_retyped_is_one_wording():
    assert wording("  How do I   feed my GV ") == wording("how do i feed my gv")


def test_a_group_is_labelled_by_its_most_asked_wording_and_counts_users():
    g = Group.of([item(1, "gv top up", session="a"), item(2, "GV top up", session="b"), item(3, "top up gv",
                                                                                           session="a")])
    assert g.label == "GV top up"  # asked twice; shown as last typed
    assert (g.size, g.users) == (3, 2)
    assert g.wordings() == [("GV top up", 2), ("top up gv", 1)]
    assert g.first_seen < g.last_seen == g.items[0].asked_at
    assert g.summary() == "GV top up (3 questions, 2 users)"


def test_a_groups_id_depends_on_its_label_not_on_the_order_rows_came_in():
    rows = [item(1, "a"), item(2, "a"), item(3, "b")]
    assert Group.of(rows).id == Group.of(list(reversed(rows))).id == Group.of(rows[:2]).id


def test_suggestions_are_ordered_by_summed_probability():
    g = Group.of([item(1, "x", offered=(("gv-topup", 0.4), ("gv-amount", 0.3))),
                  item(2, "y", offered=(("gv-amount", 0.5), ("gen-topup", 0.1)))])
    assert g.suggested() == ["gv-amount", "gv-topup", "gen-topup"]


def test_questions_are_filed_per_language_once_each():
    g = Group.of([item(1, "GV怎么喂", language="zh"), item(2, "gv怎么喂", language="zh"), item(3, "feed gv")])
    assert g.questions() == {"zh": ("gv怎么喂",), "en": ("feed gv",)}  # as last typed


@pytest.mark.parametrize("n", [0, 1])
def test_clustering_nothing_or_one(n):
    assert cluster(np.eye(3, dtype=np.float32)[:n]) == list(range(n))


def test_clustering_keeps_only_alike_questions_together():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    near_a = np.array([0.99, 0.141, 0.0]) / np.linalg.norm([0.99, 0.141, 0.0])
    assert cluster(np.stack([a, b, near_a]).astype(np.float32), min_similarity=0.9) == [0, 1, 0]


def test_groups_by_meaning_with_the_assistants_reading(tiny_assistant):
    items = [item(n, q) for n, q in enumerate([*FEED, "what is the weather today", "WHAT is the weather today"])]
    groups = group(items, lambda q: tiny_assistant.understand(q).matched, tiny_assistant.embedder.embed_queries)
    assert [(g.size, sorted({wording(i.question) for i in g.items})) for g in groups] == [
        (3, ["how do i feed my google voice", "how do i feed my gv"]),  # provider names are taken out
        (2, ["what is the weather today"])]
    again = group(list(reversed(items)), lambda q: tiny_assistant.understand(q).matched,
                  tiny_assistant.embedder.embed_queries)
    assert [g.id for g in again] == [g.id for g in groups]
    assert find(groups, groups[1].id) is groups[1] and find(groups, "2") is groups[1]
    with pytest.raises(ValueError, match="no inbox group 'g-nope'"):
        find(groups, "g-nope")


# -- files -----------------------------------------------------------------------------------------------
def feed_action(kind: str = "attach", entry: str | None = "gv-topup", **overrides) -> Action:
    fields = dict(kind=kind, group_id="g-abc123", questions={"en": tuple(FEED)}, actor="Ann",
                  at=dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC), entry_id=entry)
    return Action(**{**fields, **overrides})


@pytest.mark.parametrize(("changes", "message"), [
    ({"kind": "delete"}, "action must be one of"), ({"entry_id": None}, "attach needs"),
    ({"actor": "  "}, "say who acts"), ({"questions": {"en": ("  ",)}}, "no question to file")])
def test_an_action_is_refused_by_what_is_wrong(changes, message):
    with pytest.raises(ValueError, match=message):
        feed_action(**changes)


def test_attached_questions_load_as_phrasings_of_the_entry(kb_dir):
    before = load_knowledge(kb_dir)
    path, kb = save(feed_action(), kb_dir)
    assert path == kb_dir / "learned" / "20261201-100000-attach-gv-topup-g-abc123.yaml"
    entry = kb.by_id["gv-topup"]
    assert entry.questions["en"][-2:] == ("how do i feed my gv", "how do i feed my google voice")  # once each
    assert entry.learned == {"en": ("how do i feed my gv", "how do i feed my google voice")}
    assert entry.questions["zh"] == before.by_id["gv-topup"].questions["zh"]
    assert kb.digest != before.digest and kb.digest == digest_of(kb_dir)
    assert kb.learned_files == ("learned/20261201-100000-attach-gv-topup-g-abc123.yaml",)


def test_out_of_scope_questions_join_the_questions_to_decline(kb_dir):
    before = load_knowledge(kb_dir)
    _, kb = save(feed_action("out_of_scope", entry="gv-topup", questions={"zh": ("比特币怎么买",)}), kb_dir)
    assert kb.off_topic["zh"] == (*before.off_topic["zh"], "比特币怎么买")
    assert kb.learned_off_topic == {"zh": ("比特币怎么买",)}
    assert "entry" not in yaml.safe_load(next((kb_dir / "learned").glob("*.yaml")).read_text())


def test_a_draft_is_written_but_never_loaded(kb_dir):
    before = load_knowledge(kb_dir)
    path, kb = save(feed_action("new_entry"), kb_dir)
    assert path.parent.name == "drafts" and "TODO" in path.read_text(encoding="utf-8")
    assert kb.digest == before.digest and "how do i feed my gv" not in kb.by_id["gv-topup"].questions["en"]
    draft = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert draft["provider"] == "google_voice" and draft["entries"][0]["questions"]["en"] == list(FEED[::2])
    assert draft["entries"][0]["answer"] == {"zh": "TODO", "en": "TODO"}


def test_secrets_stay_masked_in_what_is_written(kb_dir):
    path, _ = save(feed_action(questions={"en": (f"my card {CARD} is declined",)}), kb_dir)
    text = path.read_text(encoding="utf-8")
    assert CARD not in text and "4539" not in text and "••••" in text


@pytest.mark.parametrize("kind", ["attach", "out_of_scope", "new_entry"])
def test_secrets_stay_masked_in_every_file_download_and_record(kb_dir, tmp_path, kind):
    # Even a question that reached the inbox unmasked (the store masks what it keeps) is written masked.
    action = feed_action(kind, questions={"en": (f"my card {CARD} is declined", "cvv 123 rejected")})
    text = render(action, load_knowledge(kb_dir))
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    try:
        path, _, _ = file_action(action, kb_dir, store)
        recorded = queries.actions(store)["questions"].tolist()
    finally:
        store.close()
    for written in (text, patch(action, text), path.read_text(encoding="utf-8"), *recorded):
        assert CARD not in written and "4539" not in written and "cvv 123" not in written, written
        assert "my card •••• •••• •••• •••• is declined" in written and "cvv ••• rejected" in written


def test_a_question_with_a_hash_survives_yaml(kb_dir):
    _, kb = save(feed_action(questions={"zh": ("拨 #225# 查余额",)}), kb_dir)
    assert kb.by_id["gv-topup"].questions["zh"][-1] == "拨 #225# 查余额"


def test_an_unknown_entry_is_refused_and_the_folder_left_as_it_was(kb_dir):
    with pytest.raises(KnowledgeError) as info:
        save(feed_action(entry="gv-nope"), kb_dir)
    assert info.value.errors == ["learned/20261201-100000-attach-gv-nope-g-abc123.yaml: -: entry: unknown entry id "
                                 "'gv-nope' (learned phrasings attach to an entry that exists)"]
    assert list((kb_dir / "learned").iterdir()) == []
    load_knowledge(kb_dir)


def test_an_action_never_overwrites_a_file(kb_dir):
    save(feed_action(), kb_dir)
    with pytest.raises(FileExistsError):
        write("x", kb_dir, feed_action().path)


def test_the_patch_applies_with_git(kb_dir, tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    action = feed_action()
    text = render(action)
    repo = tmp_path / "repo"
    (repo / "knowledge").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "x.patch").write_text(patch(action, text), encoding="utf-8")
    subprocess.run(["git", "apply", "x.patch"], cwd=repo, check=True)
    assert (repo / "knowledge" / action.path).read_text(encoding="utf-8") == text


# -- measuring and switching -------------------------------------------------------------------------------
def tiny(kb_dir: Path) -> Assistant:
    kb, embedder = load_knowledge(kb_dir), HashingEmbedder()
    return Assistant(kb, build_index(kb, embedder), embedder)


def test_the_seeded_embedder_gives_the_index_vectors_and_embeds_only_what_is_new(tiny_assistant):
    calls: list[list[str]] = []

    class Counting(HashingEmbedder):
        def embed_queries(self, texts):
            calls.append(list(texts))
            return super().embed_queries(texts)

    seeded = SeededEmbedder(Counting(), tiny_assistant.index)
    known = next(k.text for k in tiny_assistant.index.keys if k.kind == "question")
    assert np.allclose(seeded.embed_queries([known]), HashingEmbedder().embed_queries([known]))
    seeded.embed_queries([known, "brand new", "brand new"])
    assert calls == [["brand new"]]


def test_an_action_is_measured_on_a_copy_and_shows_the_groups_it_answers(kb_dir, sets):
    live = tiny(kb_dir)
    groups = [Group.of([item(n, q) for n, q in enumerate(FEED)])]
    assert all(not live.ask(q).answered for q in FEED)
    evaluator = Evaluator(live.embedder, [sets[0]], sets[1])
    effect = measure(feed_action(group_id=groups[0].id), live, kb_dir, evaluator, groups)
    assert not (kb_dir / "learned").exists()  # nothing written outside the copy
    assert effect.before.dev["n"] == 4 and effect.before.test["n"] == 2
    assert effect.after.dev["top1"] >= effect.before.dev["top1"] and effect.worse() == []
    (change,) = effect.groups
    assert (change.asked, change.answered_before, change.answered_after) == (2, 0, 2)
    assert change.entry_after == "gv-topup" and change.changed
    assert effect.kb.digest != live.kb.digest and effect.base_digest == live.kb.digest
    summary = json.loads(json.dumps(effect.summary()))
    assert summary["groups"][0]["entry_after"] == "gv-topup" and "before" in summary
    assert list(effect_table(effect)["when / 时间"]) == ["before / 之前", "after / 之后"] * 2


def test_a_question_of_the_test_set_is_flagged(kb_dir, sets):
    live = tiny(kb_dir)
    action = feed_action(questions={"en": ("gv top up", "how do i feed my gv")})
    effect = measure(action, live, kb_dir, Evaluator(live.embedder, [sets[0]], sets[1]))
    assert effect.in_test_set == ["gv top up"] and effect.in_dev_sets == []


def test_a_draft_changes_nothing_served(kb_dir, sets):
    live = tiny(kb_dir)
    effect = measure(feed_action("new_entry"), live, kb_dir, Evaluator(live.embedder, [sets[0]], sets[1]))
    assert effect.index is None and effect.before == effect.after and effect.worse() == []


def test_worse_names_each_score_that_drops(kb_dir, sets):
    live = tiny(kb_dir)
    effect = measure(feed_action("new_entry"), live, kb_dir, Evaluator(live.embedder, [sets[0]], sets[1]))
    effect.after = type(effect.after)({**effect.after.dev, "top1": effect.after.dev["top1"] - 0.25,
                                       "in_scope_declined": 0.5}, effect.after.test)
    assert effect.worse()[0].startswith("dev top1 ") and effect.worse()[1].startswith("dev in_scope_declined ")


@pytest.fixture
def hub(kb_dir, tmp_path, sets, monkeypatch) -> Live:
    settings = Settings(knowledge_dir=kb_dir, data_dir=tmp_path / "var", model="hashing")
    assistant = tiny(kb_dir)
    save_index(assistant.index, settings.index_dir)
    hub = Live(settings)
    hub.assistant(lambda: assistant)
    monkeypatch.setattr(hub, "_evaluator", Evaluator(assistant.embedder, [sets[0]], sets[1]))
    return hub


def wait(job, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not job.over:
        assert time.monotonic() < deadline, job.messages
        time.sleep(0.05)
    assert job.status == "done", job.error
    return job.result


def test_saving_switches_the_serving_assistant_to_the_measured_index(hub, store):
    old = hub.assistant()
    ids = [log(store, old, q, f"s{n}") for n, q in enumerate(FEED)]
    groups = gather(store, lambda q: old.understand(q).matched, old.embedder.embed_queries)
    action = feed_action(group_id=groups[0].id, questions=groups[0].questions())
    effect = wait(hub.measure(action, groups))
    assert hub.assistant() is old  # measuring changes nothing served
    action_id = wait(hub.save(effect, store, ids))
    new = hub.assistant()
    assert new is not old and new.index is effect.index and new.embedder is old.embedder
    assert all(new.ask(q).entry_id == "gv-topup" for q in FEED)
    assert not old.ask(FEED[0]).answered  # a question already being answered by the old one is not disturbed
    assert (hub.settings.knowledge_dir / action.path).is_file()
    assert load_knowledge(hub.settings.knowledge_dir).digest == new.kb.digest == effect.index.manifest.knowledge_digest
    history = queries.actions(store)
    assert history[["action_id", "actor", "action", "group_id", "entry_id", "file"]].to_dict("records") == [
        {"action_id": action_id, "actor": "Ann", "action": "attach", "group_id": groups[0].id, "entry_id": "gv-topup",
         "file": action.path}]
    assert json.loads(history["effect"][0])["after"]["dev"]["n"] == 4
    assert queries.inbox_items(store).empty  # the group left the inbox
    assert not hub.changed_on_disk()


def test_a_measurement_older_than_the_last_save_is_refused(hub, store):
    first = wait(hub.measure(feed_action()))
    second = wait(hub.measure(feed_action("out_of_scope", group_id="g-other", questions={"en": ("weather?",)})))
    wait(hub.save(first, store))
    job = hub.save(second, store)
    while not job.over:
        time.sleep(0.05)
    assert job.status == "failed" and StaleEffect.__name__ in job.error and "measure it again" in job.error
    assert len(queries.actions(store)) == 1


def test_a_file_written_elsewhere_is_noticed_and_loaded(hub, store):
    old = hub.assistant()
    file_action(feed_action(), hub.settings.knowledge_dir, store)  # as `retrieval inbox attach` does
    assert hub.changed_on_disk() and hub.assistant() is old
    wait(hub.reload())
    assert not hub.changed_on_disk() and hub.assistant().ask(FEED[0]).entry_id == "gv-topup"


def test_the_record_failing_removes_the_file(hub, store, monkeypatch):
    def refuse(**_):
        raise RuntimeError("database away")

    monkeypatch.setattr(store, "record_action", refuse)
    with pytest.raises(RuntimeError):
        file_action(feed_action(), hub.settings.knowledge_dir, store)
    assert not list((hub.settings.knowledge_dir / "learned").glob("*.yaml"))


def test_views_list_suggestions_first_and_every_entry(tiny_kb):
    g = Group.of([item(1, "x", offered=(("tello-topup", 0.6), ("gone-entry", 0.3)))])
    choices = entry_choices(g, tiny_kb)
    assert choices[0] == "tello-topup" and sorted(choices) == sorted(tiny_kb.by_id)
    assert group_rows([g]).iloc[0]["group / 问题组"] == "x (1 question, 1 user)"


# -- the command line --------------------------------------------------------------------------------------
def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retrieval", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=300)


def test_the_command_line_lists_the_groups_and_attaches_one(kb_dir, tmp_path):
    env = {"ASSISTANT_KNOWLEDGE_DIR": str(kb_dir), "ASSISTANT_MODEL": "hashing",
           "ASSISTANT_DATA_DIR": str(tmp_path / "var"), "ASSISTANT_FEEDBACK_DB": str(tmp_path / "fb.sqlite3")}
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    assistant = tiny(kb_dir)
    for n, q in enumerate([*FEED, "what is the weather today"]):
        log(store, assistant, q, f"s{n}")
    store.report_mistake(session_id="s9", entry_id="gv-amount", text="the minimum is $5 now")
    store.close()
    listed = run(["inbox"], env)
    assert listed.returncode == 0, listed.stderr
    assert "2 group(s), 4 question(s) in the inbox" in listed.stdout
    assert "how do i feed my gv (3 questions, 3 users)" in listed.stdout.lower()
    assert "gv-amount: the minimum is $5 now" in listed.stdout
    as_json = json.loads(run(["inbox", "--json"], env).stdout)
    feed = next(g for g in as_json["groups"] if g["questions"] == 3)
    assert run(["inbox", "attach", feed["id"], "gv-nope"], env).returncode == 2
    attached = run(["inbox", "attach", feed["id"], "gv-topup", "--by", "Ann"], env)
    assert attached.returncode == 0, attached.stderr
    assert "2 phrasing(s) of gv-topup" in attached.stdout and "by Ann" in attached.stdout
    assert load_knowledge(kb_dir).by_id["gv-topup"].learned["en"] == ("How do I feed my GV",  # as last typed
                                                                     "how do i feed my google voice")
    after = json.loads(run(["inbox", "--json"], env).stdout)
    assert [g["label"] for g in after["groups"]] == ["what is the weather today"]
    assert run(["inbox", "out-of-scope", "1", "--by", "Ann"], env).returncode == 0
    assert load_knowledge(kb_dir).learned_off_topic == {"en": ("what is the weather today",)}


def test_reader_reads_like_the_assistant(tiny_assistant):
    read = reader(tiny_assistant.kb)
    for question in [*FEED, "Tello 怎么充值", ""]:
        assert read(question) == tiny_assistant.understand(question).matched


def test_scores_whose_digits_look_like_a_card_are_stored_as_json_that_reads_back():
    """A float's 16 digits (0.9218715393133998, a real test-set MRR) pass the card-number check: masked as stored,
    the recorded effect was no longer JSON. Rounded, it is kept whole."""
    from retrieval.learn.effect import Scores
    from retrieval.serving.safety import mask_secrets

    assert mask_secrets(json.dumps({"mrr": 0.9218715393133998})).found == ("card",)
    scores = Scores({"mrr": 0.9218715393133998, "n": 1014}, {"oos_declined": 0.8804347826086957, "n": 393})
    stored = mask_secrets(json.dumps(scores.to_json())).text
    assert json.loads(stored) == {"dev": {"mrr": 0.921872, "n": 1014}, "test": {"oos_declined": 0.880435, "n": 393}}
    assert Scores({"top1": 0.5}, None).to_json() == {"dev": {"top1": 0.5}, "test": None}
