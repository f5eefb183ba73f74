"""Ablation: what each part of understanding is worth, on the development sets and the frozen test set.

Each row takes one part away from the assistant as it ships (or swaps one), refits what depends on it
(the decline rule is recalibrated on the development sets for every row, as a real change would be),
and scores dev and test side by side. `python -m retrieval eval --ablation` prints the table; it
rebuilds two indexes in memory, so it takes several minutes.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from retrieval.build.index import build_index
from retrieval.build.models import FitConfig
from retrieval.measure.evaluate import DevQuestion, calibrate, load_for_eval, metrics, run
from retrieval.measure.typos import with_typos
from retrieval.serving.assistant import Assistant
from retrieval.serving.decide import DecisionConfig
from retrieval.serving.ranking import RankingConfig
from retrieval.serving.understand import Reader
from retrieval.settings import Settings

THRESHOLDS = {"decline_weights": ()}  # the hand-set thresholds instead of the learned rule


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable[[Assistant], Assistant]  # the shipped assistant -> the variant (sharing what it can)
    recalibrate: bool = True


def _with(decision: dict | None = None, ranking: RankingConfig | None = None) -> Callable[[Assistant], Assistant]:
    def make(a: Assistant) -> Assistant:
        return Assistant(a.kb, a.index, a.embedder, ranking or a.ranker.config,
                         dataclasses.replace(a.decision, **(decision or {})), a.max_chars)
    return make


def _rebuilt(kb_changes: dict | None = None, fit: FitConfig | None = None) -> Callable[[Assistant], Assistant]:
    def make(a: Assistant) -> Assistant:
        kb = dataclasses.replace(a.kb, **(kb_changes or {}))
        index = build_index(kb, a.embedder, fit=fit or FitConfig())
        return Assistant(kb, index, a.embedder, a.ranker.config, a.decision, a.max_chars)
    return make


def _without_stories(a: Assistant) -> Assistant:
    """The scope models fitted without conversation.yaml's stories around phrasings (as before 2026-12-05)."""
    return _rebuilt({"conversation": dataclasses.replace(a.kb.conversation, stories={})})(a)


def _without_topic_confidence(a: Assistant) -> Assistant:
    """The decline rule without the topic models' confidence (`DeclineSignals.topics` held at 0, so its refit gives it
    no weight: as before session 27)."""
    v = copy.copy(a)
    read = a.read

    def read_without(understood):
        r = read(understood)
        return dataclasses.replace(r, signals=dataclasses.replace(r.signals, topics=0.0))
    v.read = read_without
    return v


def _without_speller(a: Assistant) -> Assistant:
    v = copy.copy(a)
    v.reader = Reader(a.kb, a.vocabulary.counts, a.max_chars, spelling=False)
    return v


def _without_comparing(a: Assistant) -> Assistant:
    v = copy.copy(a)
    v.reader = Reader(a.kb, a.vocabulary.counts, a.max_chars, compared=0)
    return v


def _without(**kb_changes) -> Callable[[Assistant], Assistant]:
    """The shipped index with knowledge the index does not depend on left out (other_services.yaml's lists)."""
    def make(a: Assistant) -> Assistant:
        kb = dataclasses.replace(a.kb, **kb_changes)
        return Assistant(kb, a.index, a.embedder, a.ranker.config, a.decision, a.max_chars)
    return make


def _without_narrow_topics(a: Assistant) -> Assistant:
    """The topics not ours that a word alone does not name, or that have words of ours of their own (other
    services' codes on a Google Voice number, call forwarding) left to the models; the other topics kept."""
    return _without(other_topics=tuple(t for t in a.kb.other_topics if not t.narrow))(a)


VARIANTS = (
    Variant("**as shipped**: product words, speller, other services and topics by name (other services' codes on a "
            "Google Voice number and call forwarding among them), keeping a US number, signing in to a line, any "
            "provider's account taken over, a number taken over, a line refusing a card, paying a line by card and "
            "paying on a public network as ours, another app's membership as not ours, several "
            "providers compared, a bare action read as how-to, topic models (vector and words), learned decline rule",
            lambda a: a, False),
    Variant("without the topic models (entry ranking alone decides the topic)", _with({"topic_weight": 0.0})),
    Variant("without the word topic model (the vector's topic model alone)",
            _with({"word_topic_weight": 0.0}), False),
    Variant("topic models alone decide the topic (weight 100)", _with({"topic_weight": 100.0})),
    Variant("without the learned decline rule (the hand-set thresholds)", _with(THRESHOLDS), False),
    Variant("without the topic models' confidence in the decline rule (as before session 27)",
            _without_topic_confidence),
    Variant("nearest phrasing only (no topic pooling, answers, BM25, topic model)",
            _with({"topic_weight": 0.0}, RankingConfig(weight_topic=0.0, weight_answers=0.0, weight_lexical=0.0))),
    Variant("without the product words (美国E卡, US SIM card ... kept in the question)",
            _rebuilt({"vocabulary": (), "product_words": ()})),
    Variant("without context around phrasings when fitting the classifiers", _rebuilt(fit=FitConfig(augment_every=0))),
    Variant("context of one sentence only (as before 2026-12-02)", _rebuilt(fit=FitConfig(context_in=1))),
    Variant("without stories around phrasings for the scope models (a visa, a move: as before 2026-12-05)",
            _without_stories),
    Variant("without the speller (misspelt words read as typed)", _without_speller),
    Variant("without the topic examples (the topic models learn the phrasings alone)",
            _rebuilt({"topic_examples": ()})),
    Variant("without the other services by name (中国移动, Netflix ... left to the models)",
            _without(other_services=()), False),
    Variant("without the topics not ours by their words (APN, voicemail, SSN ... left to the models)",
            _without(other_topics=()), False),
    Variant("without keeping a US number as ours (keep_words: the rule judges \"keep my US number\" too)",
            _without(keep_words=()), False),
    Variant("without signing in to a line of ours as ours (account_words: the rule judges \"cant login to mint\" too)",
            _without(account_words=()), False),
    Variant("without any provider's account taken over as ours (takeover_words: the rule judges \"someone took over "
            "my google voice\" too)", _without(takeover_words=()), False),
    Variant("without a line of ours refusing a card as ours (refused_words: the rule judges \"US Mobile declines my "
            "card\" too)", _without(refused_words=()), False),
    Variant("without paying on a public network as ours (public_wifi_words: the rule judges \"在星巴克连公共wifi充话费"
            "安全吗\" too)", _without(public_wifi_words=()), False),
    Variant("without a number taken over as ours with no provider named (number_words: the rule judges \"号码被 "
            "hijack 了\" too)", _without(number_words=()), False),
    Variant("without paying a line of ours by card as ours (card_words: the rule judges \"Ultra 用香港信用卡得唔得\" "
            "too)", _without(card_words=()), False),
    Variant("without another app's membership as not ours (membership_words: the rule judges \"api key 过期了…只能用"
            "虚拟信用卡充值\" too)", _without(membership_words=()), False),
    Variant("without comparing several providers (three named: the first one is the provider, as with two)",
            _without_comparing, False),
    Variant("without a bare action read as how-to (bare_actions: \"Tello 充话费\" read as typed, as amounts)",
            _without(bare_actions=()), False),
    Variant("without the narrow topics not ours: other services' codes on a Google Voice number, call forwarding, "
            "moving a number into a carrier, Microsoft Teams as a business phone (\"WeChat code never arrives on my "
            "google voice\" left to the models)",
            _without_narrow_topics, False),
)


def ablation(assistant: Assistant, dev: list[DevQuestion], test: list[DevQuestion] | None, out: TextIO,
             say: Callable[[str], None] = lambda _m: None) -> str:
    header = ("| variant | dev top-1 | dev top-3 | dev out-of-scope declined | dev in-scope declined | "
              "test top-1 | test top-3 | test out-of-scope declined | test in-scope declined | "
              "dev with typos top-1 | dev with typos in-scope declined |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [header]
    typos = with_typos(dev)
    for variant in VARIANTS:
        say(f"ablation: {variant.name}")
        a = variant.make(assistant)
        if variant.recalibrate:
            a.decision = calibrate(a, dev, io.StringIO())
        d = metrics(run(a, dev))
        t = metrics(run(a, test)) if test else {}
        slips = metrics(run(a, typos))

        def cells(m: dict) -> str:
            keys = ("top1", "top3", "oos_declined", "in_scope_declined")
            return " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in keys)
        rows.append(f"| {variant.name} | {cells(d)} | {cells(t)} | {slips['top1']:.3f} | "
                    f"{slips['in_scope_declined']:.3f} |")
        print(rows[-1], file=out, flush=True)
    return "\n".join(rows)


def cmd_ablation(args, settings: Settings, out: TextIO) -> int:
    """`eval --ablation`: the table on standard output, progress on standard error."""
    dev_sets, test, assistant = load_for_eval(args, settings)
    questions = [q for qs in dev_sets.values() for q in qs]
    table = ablation(assistant, questions, test, out=sys.stderr, say=lambda m: print(m, file=sys.stderr))
    print("## Ablation (one part taken away at a time; decline rule recalibrated on dev for each)\n\n" + table,
          file=out)
    return 0


__all__ = ["VARIANTS", "DecisionConfig", "ablation", "cmd_ablation"]
