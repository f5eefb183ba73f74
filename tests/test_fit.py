"""Fitting the classifiers: the phrasings and declined questions learned again with context around them."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest

from retrieval.build.models import FitConfig, with_context
from retrieval.knowledge import load_knowledge
from retrieval.serving.chunks import KeyKind, make_keys

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


@pytest.mark.parametrize("changes", [{"context_in": 0}, {"context_out": 0}])
def test_a_context_count_under_one_is_refused_by_name(changes):
    with pytest.raises(ValueError, match="context_in and context_out must be at least 1"):
        FitConfig(**changes)
