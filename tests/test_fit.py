"""Fitting the classifiers: the phrasings and declined questions learned again with context around them."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from retrieval.build.index import build_index
from retrieval.build.models import FitConfig, with_context
from retrieval.knowledge import load_knowledge
from retrieval.serving.chunks import KeyKind, make_keys
from retrieval.serving.classifier import Classifiers
from retrieval.serving.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kb():
    """The real knowledge base with a pool of context sentences that can be counted: "<zh 0>", "<en 1>"..."""
    real = load_knowledge(ROOT / "knowledge")
    pool = {lang: tuple(f"<{lang} {i}>" for i in range(len(sentences)))
            for lang, sentences in real.conversation.context.items()}
    return dataclasses.replace(real, conversation=dataclasses.replace(real.conversation, context=pool))


def sentences_around(key, original) -> int:
    """How many context sentences an augmented key carries, checking that the original text is kept whole
    and that they are in the key's language."""
    assert original.text in key.text
    found = re.findall(r"<(\w+) \d+>", key.text.replace(original.text, "", 1))
    assert found and set(found) == {key.language}, key.text
    return len(found)


def test_phrasings_get_one_to_three_sentences_and_declined_questions_one(kb):
    keys = make_keys(kb)
    chosen = [k for k in keys if k.kind in (KeyKind.QUESTION, KeyKind.OFF_TOPIC)]
    extra = with_context(kb, keys, FitConfig(augment_every=3, context_in=3, context_out=1))
    originals = [k for i, k in enumerate(chosen) if i % 3 == 0 and kb.conversation.context.get(k.language)]
    assert len(extra) == len(originals)
    counts: dict[KeyKind, Counter] = {KeyKind.QUESTION: Counter(), KeyKind.OFF_TOPIC: Counter()}
    for key, original in zip(extra, originals, strict=True):
        assert (key.entry_id, key.kind, key.language) == (original.entry_id, original.kind, original.language)
        counts[key.kind][sentences_around(key, original)] += 1
    assert set(counts[KeyKind.QUESTION]) == {1, 2, 3}
    assert max(counts[KeyKind.QUESTION].values()) - min(counts[KeyKind.QUESTION].values()) <= 1
    assert set(counts[KeyKind.OFF_TOPIC]) == {1}
    # Some context goes before the question and some after it.
    assert any(k.text.startswith(o.text) for k, o in zip(extra, originals, strict=True))
    assert any(k.text.endswith(o.text) for k, o in zip(extra, originals, strict=True))


def test_augmenting_is_deterministic_and_can_be_turned_off(kb):
    keys = make_keys(kb)
    assert with_context(kb, keys, FitConfig()) == with_context(kb, keys, FitConfig())
    assert with_context(kb, keys, FitConfig(augment_every=0)) == []


def test_stories_are_told_around_phrasings_from_their_own_pool(kb):
    """conversation.yaml's stories are a second pool: the same keys, chosen the same way, with its sentences."""
    keys = make_keys(kb)
    stories = {lang: tuple(f"<{lang} {i}>" for i in range(5)) for lang in kb.conversation.context}
    told = with_context(kb, keys, FitConfig(), stories)
    around = with_context(kb, keys, FitConfig())
    assert [(k.entry_id, k.kind) for k in told] == [(k.entry_id, k.kind) for k in around]
    assert all(not re.search(r"<\w+ ([5-9]|\d\d+)>", k.text) for k in told)  # only the five stories
    assert told != around


def test_stories_teach_the_scope_models_and_leave_the_topic_models_alone():
    """A question of ours told inside a life is learned as ours by the scope models; the topic models, which
    a story would only blur, are fitted as without stories."""
    real = load_knowledge(ROOT / "knowledge")
    assert real.conversation.stories.get("zh") and real.conversation.stories.get("en")
    plain = dataclasses.replace(real, conversation=dataclasses.replace(real.conversation, stories={}))
    embedder = HashingEmbedder()
    with_stories = build_index(real, embedder).classifiers
    without = build_index(plain, embedder).classifiers
    assert with_stories.topic.coef.tolist() == without.topic.coef.tolist()
    assert with_stories.word_topic.linear.coef.tolist() == without.word_topic.linear.coef.tolist()
    assert with_stories.scope.coef.tolist() != without.scope.coef.tolist()
    # the scope word model has learned the stories' words, and only theirs are new
    new = set(with_stories.words.terms) - set(without.words.terms)
    told = " ".join(s.lower() for sentences in real.conversation.stories.values() for s in sentences)
    assert new and all(any(part in told for part in term.split("_")) for term in new)


@pytest.mark.parametrize("changes", [{"context_in": 0}, {"context_out": 0}])
def test_a_context_count_under_one_is_refused_by_name(changes):
    with pytest.raises(ValueError, match="context_in and context_out must be at least 1"):
        FitConfig(**changes)


def test_the_topic_model_learns_the_topic_examples(kb_dir):
    """An example's words, unknown to every phrasing, pull the topic model towards the example's topic."""
    examples = [{"q": f"zorblax quuxwell {i}", "topic": "safety"} for i in range(5)]
    (kb_dir / "topic_examples.yaml").write_text(yaml.safe_dump({"examples": examples}), encoding="utf-8")
    embedder = HashingEmbedder()
    probe = embedder.embed_queries(["zorblax quuxwell"])

    def p_safety(topic) -> float:
        return float(topic.probabilities(probe)[0][topic.classes.index("safety")])

    kb = load_knowledge(kb_dir)
    learned = build_index(kb, embedder).classifiers
    ignored = build_index(kb, embedder, fit=FitConfig(example_weight=0)).classifiers
    assert p_safety(learned.topic) > 0.5 and p_safety(learned.topic) > 2 * p_safety(ignored.topic)
    # The decline rule reads a topic model of the phrasings alone: the examples leave it as it was.
    assert p_safety(learned.decline_topic) == pytest.approx(p_safety(ignored.topic), abs=1e-6)
    assert ignored.decline_topic.coef.tolist() == ignored.topic.coef.tolist()


def test_the_word_topic_model_learns_phrasings_and_examples_by_their_words(kb_dir):
    """The word topic model hears a topic's words in a long story, and learns the examples' words too."""
    examples = [{"q": f"zorblax quuxwell {i}", "topic": "safety"} for i in range(5)]
    (kb_dir / "topic_examples.yaml").write_text(yaml.safe_dump({"examples": examples}), encoding="utf-8")
    kb = load_knowledge(kb_dir)
    words = build_index(kb, HashingEmbedder()).classifiers.word_topic
    assert set(words.linear.classes) == {e.topic for e in kb.entries}
    for entry in kb.entries:
        phrasing = entry.questions["en"][0]
        p = words.probabilities(f"so last week my sister told me a long story, anyway {phrasing}")
        assert words.linear.classes[int(p.argmax())] == entry.topic, phrasing
    assert words.probability("zorblax quuxwell", of="safety") > 0.5
    alone = build_index(kb, HashingEmbedder(), fit=FitConfig(example_weight=0)).classifiers.word_topic
    assert "zorblax" not in alone.terms


def test_a_negative_example_weight_is_refused():
    with pytest.raises(ValueError, match="example_weight must not be negative"):
        FitConfig(example_weight=-1)


def test_every_model_is_saved_and_loaded(kb_dir, tmp_path):
    (kb_dir / "topic_examples.yaml").write_text(
        yaml.safe_dump({"examples": [{"q": "zorblax quuxwell", "topic": "safety"}]}), encoding="utf-8")
    fitted = build_index(load_knowledge(kb_dir), HashingEmbedder()).classifiers
    fitted.save(tmp_path)
    loaded = Classifiers.load(tmp_path)
    assert loaded.topic.coef.tolist() == fitted.topic.coef.tolist()
    assert loaded.decline_topic.coef.tolist() == fitted.decline_topic.coef.tolist()
    assert loaded.topic.coef.tolist() != loaded.decline_topic.coef.tolist()
    for name in ("words", "word_topic"):
        assert getattr(loaded, name).terms == getattr(fitted, name).terms
        assert getattr(loaded, name).linear.coef.tolist() == getattr(fitted, name).linear.coef.tolist()
        assert getattr(loaded, name).probabilities("zorblax quuxwell").tolist() == \
            getattr(fitted, name).probabilities("zorblax quuxwell").tolist()
