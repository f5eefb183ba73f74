"""Evaluation: score the assistant and the baselines on the development question set."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import yaml

from retrieval.measure.typos import with_chinese_typos, with_typos
from retrieval.serving.answer import Answer, Kind
from retrieval.serving.assistant import Assistant
from retrieval.serving.decide import DecisionConfig, DeclineSignals
from retrieval.settings import ROOT, Settings

DEV_SET = ROOT / "eval" / "dev_set.yaml"
# The sets thresholds and weights are tuned on; the frozen test set is only ever reported.
DEV_SETS = (DEV_SET, ROOT / "eval" / "dev_more.yaml", ROOT / "eval" / "dev_long.yaml")
TEST_SET = ROOT / "eval" / "test_set.yaml"
OUT_OF_SCOPE, ASK_PROVIDER = "out_of_scope", "ask_provider"
# Answers that give nothing from the knowledge base: right for an out-of-scope question, wrong otherwise.
NO_ANSWER = (Kind.DECLINE, Kind.EMPTY, Kind.NOT_UNDERSTOOD, Kind.SMALL_TALK)


@dataclass(frozen=True)
class DevQuestion:
    q: str
    lang: str
    kind: str
    expect: tuple[str, ...] | str  # acceptable "provider/topic" labels, or OUT_OF_SCOPE / ASK_PROVIDER
    context: str | None = None
    origin: str = "written"  # real (taken from a public post: `source` says where) or written
    source: str | None = None

    @property
    def in_scope(self) -> bool:
        return self.expect != OUT_OF_SCOPE

    @property
    def provider(self) -> str:
        if isinstance(self.expect, str):
            return self.expect
        return self.expect[0].split("/")[0]


def load_dev_set(path: Path = DEV_SET) -> list[DevQuestion]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, item in enumerate(doc["questions"]):
        expect = item["expect"]
        if not (expect in (OUT_OF_SCOPE, ASK_PROVIDER) or (isinstance(expect, list) and expect)):
            raise ValueError(f"{path}: question {i} ({item.get('q')!r}): expect must be a list of "
                             f"provider/topic labels, {OUT_OF_SCOPE!r} or {ASK_PROVIDER!r}")
        out.append(DevQuestion(str(item["q"]), item["lang"], item["kind"],
                               tuple(expect) if isinstance(expect, list) else expect, item.get("context"),
                               item.get("origin") or ("real" if item.get("source") else "written"),
                               item.get("source")))
    return out


def load_sets(paths: Sequence[Path]) -> list[DevQuestion]:
    return [q for path in paths for q in load_dev_set(Path(path))]


def acceptable(expect: tuple[str, ...], kb) -> frozenset[str]:
    """The labels that satisfy a question: its own, and general/<topic> where the provider it names has no
    entry on the topic (the assistant then answers with general advice, as it should)."""
    out = set(expect)
    for label in expect:
        provider, _, topic = label.partition("/")
        if provider != "general" and not kb.entries_for(provider, topic):
            out.add(f"general/{topic}")
    return frozenset(out)


class CachingEmbedder:
    """Remembers query vectors, so re-deciding with other thresholds costs no model time."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.cache: dict[str, np.ndarray] = {}

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """A question alone (as the assistant embeds each) from the cache when it is there. A list is embedded
        whole, as the model alone would embed it, and remembered: a vector moves in its last digits with the batch
        it is padded in, and an index built through this cache from only the texts it lacked had other
        classifiers than `prepare` builds (three of 2,157 development answers read differently)."""
        if len(texts) == 1 and texts[0] in self.cache:
            return self.cache[texts[0]][None, :]
        vectors = self.inner.embed_queries(texts)
        for t, v in zip(texts, vectors, strict=True):
            self.cache.setdefault(t, v)
        return vectors

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)


@dataclass
class Outcome:
    question: DevQuestion
    answer: Answer
    labels: list[str]  # what the assistant offered, best first ("provider/topic")
    label_of: Callable[[str], str] = lambda entry_id: entry_id  # entry id -> "provider/topic"
    accept: frozenset[str] = frozenset()  # acceptable labels (see `acceptable`)

    @property
    def declined(self) -> bool:
        """Nothing from the knowledge base was given: a decline, "I didn't understand", or small talk."""
        return self.answer.kind in NO_ANSWER

    @property
    def rank(self) -> int | None:
        """1-based rank of the first acceptable answer, None when none was offered. A decline counts as
        a wrong first answer, then its suggestions rank 2, 3, 4."""
        q = self.question
        if q.expect == ASK_PROVIDER:
            return 1 if self.answer.kind is Kind.ASK_PROVIDER else None
        if not q.in_scope or self.answer.kind is Kind.EMPTY:
            return None
        accept = self.accept or frozenset(q.expect)
        if self.declined:  # what it offered to open instead, after the "no" that took first place
            offered = [self.label_of(c.entry_id) for c in self.answer.choices if c.entry_id]
            return next((n for n, label in enumerate(offered, 2) if label in accept), None)
        return next((n for n, label in enumerate(self.labels, 1) if label in accept), None)


def offered_labels(assistant: Assistant, answer: Answer) -> list[str]:
    """The assistant's first answer, then the rest of its hits (or its choices, when it asked)."""
    ids = [c.entry_id for c in answer.choices if c.entry_id] if answer.kind is Kind.CLARIFY else []
    ids += [answer.entry_id] if answer.entry_id else []
    ids += [h.entry_id for h in answer.hits]
    labels = []
    for entry_id in dict.fromkeys(ids):
        e = assistant.kb.by_id[entry_id]
        labels.append(f"{e.provider}/{e.topic}")
    return list(dict.fromkeys(labels))


def run(assistant: Assistant, questions: list[DevQuestion]) -> list[Outcome]:
    def label_of(entry_id: str) -> str:
        e = assistant.kb.by_id[entry_id]
        return f"{e.provider}/{e.topic}"

    outcomes = []
    for q in questions:
        answer = assistant.ask(q.q, provider=q.context)
        accept = acceptable(q.expect, assistant.kb) if isinstance(q.expect, tuple) else frozenset()
        outcomes.append(Outcome(q, answer, offered_labels(assistant, answer), label_of, accept))
    return outcomes


def metrics(outcomes: list[Outcome]) -> dict[str, float]:
    """top-1, top-3 and MRR over in-scope questions; decline rates on each side."""
    inside = [o for o in outcomes if o.question.in_scope]
    outside = [o for o in outcomes if not o.question.in_scope]
    ranks = [o.rank for o in inside]
    def share(xs: list) -> float:
        return float(np.mean(xs)) if xs else float("nan")

    return {
        "n": len(outcomes), "in_scope": len(inside), "out_of_scope": len(outside),
        "top1": share([r == 1 for r in ranks]), "top3": share([r is not None and r <= 3 for r in ranks]),
        "mrr": share([1 / r if r else 0.0 for r in ranks]),
        "oos_declined": share([o.declined for o in outside]),
        "in_scope_declined": share([o.declined for o in inside]),
    }


def breakdown(outcomes: list[Outcome], key) -> dict[str, dict[str, float]]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[key(o.question)].append(o)
    return {k: metrics(v) for k, v in sorted(groups.items())}


def score_baseline(baseline, kb, questions: list[DevQuestion]) -> dict[str, float]:
    """Baselines only rank; they are scored on the questions labelled with entries."""
    labelled = [q for q in questions if isinstance(q.expect, tuple)]
    ranks = []
    for q in labelled:
        labels = list(dict.fromkeys(f"{kb.by_id[i].provider}/{kb.by_id[i].topic}" for i in baseline.rank(q.q)))
        accept = acceptable(q.expect, kb)
        ranks.append(next((n for n, label in enumerate(labels, 1) if label in accept), None))
    return {"n": len(labelled), "top1": float(np.mean([r == 1 for r in ranks])),
            "top3": float(np.mean([r is not None and r <= 3 for r in ranks])),
            "mrr": float(np.mean([1 / r if r else 0.0 for r in ranks]))}


def labelled_only(outcomes: list[Outcome]) -> dict[str, float]:
    """The assistant on exactly the baselines' questions, for a like-for-like comparison."""
    return metrics([o for o in outcomes if isinstance(o.question.expect, tuple)])


def decline_signals(assistant: Assistant, questions: list[DevQuestion]) -> list[tuple[DevQuestion, DeclineSignals]]:
    """What the decline decision saw for each question that reaches it: `Assistant.before_deciding`, the
    path `ask` takes, answers empty questions, gibberish, small talk and follow-ups before it."""
    out = []
    for q in questions:
        early, reading = assistant.before_deciding(assistant.understand(q.q, provider=q.context))
        if early is None and reading is not None:
            out.append((q, reading.signals))
    return out


def calibrate(assistant: Assistant, questions: list[DevQuestion], out: TextIO,
              target: float = 0.02) -> DecisionConfig:
    """Fit the learned decline rule on the development questions: a logistic regression over the decline
    signals, its bar chosen by 5-fold cross-validation so that about `target` of real questions are declined.
    Prints the cross-validated rates (the honest estimate for new questions) and the fitted weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    pairs = decline_signals(assistant, questions)
    x = np.stack([s.features() for _, s in pairs])
    y = np.array([q.in_scope for q, _ in pairs], dtype=int)
    mean, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / sd

    def fit(rows: np.ndarray) -> LogisticRegression:
        return LogisticRegression(C=1.0, max_iter=5000).fit(z[rows], y[rows])

    held_out = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(z, y):
        held_out[test] = fit(train).predict_proba(z[test])[:, 1]
    bar = float(np.quantile(held_out[y == 1], target))
    model = fit(np.arange(len(y)))
    weights = model.coef_[0] / sd
    bias = float(model.intercept_[0] - (model.coef_[0] * mean / sd).sum())
    chosen = dataclasses.replace(assistant.decision, decline_weights=tuple(round(float(w), 4) for w in weights),
                                 decline_bias=round(bias, 4), min_answer_probability=round(bar, 4))
    print(f"calibrated on {len(y)} questions ({(y == 0).sum()} out of scope): 5-fold cross-validated "
          f"{(held_out[y == 0] < bar).mean():.3f} of out-of-scope declined, "
          f"{(held_out[y == 1] < bar).mean():.3f} of in-scope declined\n"
          f"DecisionConfig(decline_weights={chosen.decline_weights}, decline_bias={chosen.decline_bias}, "
          f"min_answer_probability={chosen.min_answer_probability})", file=out)
    return chosen


def _row(name: str, m: dict[str, float]) -> str:
    def pct(key: str) -> str:
        return f"{m[key]:.3f}" if key in m and m[key] == m[key] else "  -  "
    return (f"| {name} | {m.get('n', 0)} | {pct('top1')} | {pct('top3')} | {pct('mrr')} | "
            f"{pct('oos_declined')} | {pct('in_scope_declined')} |")


HEADER = ("| set | n | top-1 | top-3 | MRR | out-of-scope declined | in-scope declined |\n"
          "|---|---|---|---|---|---|---|")


def report(assistant: Assistant, questions: list[DevQuestion], outcomes: list[Outcome], baselines: list,
           worst: int) -> tuple[str, dict]:
    """The development set in detail: breakdowns, the baselines, the worst misses."""
    overall = metrics(outcomes)
    lines = ["## Development set", "", HEADER, _row("all", overall), "", "### By language", "", HEADER]
    lines += [_row(k, m) for k, m in breakdown(outcomes, lambda q: q.lang).items()]
    lines += ["", "### By kind of question", "", HEADER]
    lines += [_row(k, m) for k, m in breakdown(outcomes, lambda q: q.kind).items()]
    lines += ["", "### By provider (first expected label)", "", HEADER]
    lines += [_row(k, m) for k, m in breakdown(outcomes, lambda q: q.provider).items()]
    results = {"overall": overall, "baselines": {}}
    if baselines:
        ours = labelled_only(outcomes)
        lines += ["", "### Against the baselines (questions labelled with entries)", "",
                  "| system | n | top-1 | top-3 | MRR |", "|---|---|---|---|---|",
                  f"| this assistant | {ours['n']} | {ours['top1']:.3f} | {ours['top3']:.3f} | {ours['mrr']:.3f} |"]
        for b in baselines:
            m = score_baseline(b, assistant.kb, questions)
            results["baselines"][b.name] = m
            lines.append(f"| {b.name} | {m['n']} | {m['top1']:.3f} | {m['top3']:.3f} | {m['mrr']:.3f} |")
        results["labelled"] = ours
    misses = [o for o in outcomes if o.rank != 1 and (o.question.in_scope or not o.declined)]
    lines += ["", f"### Worst misses ({len(misses)} in all; first {worst})", ""]
    for o in misses[:worst]:
        q, a = o.question, o.answer
        got = a.kind.value if a.kind is not Kind.ANSWER else (o.labels[0] if o.labels else "-")
        top = a.hits[0].similarity if a.hits else float("nan")
        lines.append(f"- `{q.q}` (context {q.context}) expected {q.expect}, got {got} (best cosine {top:.3f})")
    return "\n".join(lines), results


def side_by_side(dev: dict[str, list[Outcome]], test: list[Outcome] | None,
                 typos: list[Outcome] | None = None, chinese_typos: list[Outcome] | None = None) -> tuple[str, dict]:
    """Dev and test in one table, with the gap between their top-1: the overfitting alarm; `typos` and
    `chinese_typos`, the development questions with typos or slips of pinyin input injected
    (measure/typos.py), each on a row of their own."""
    everything = [o for outcomes in dev.values() for o in outcomes]
    lines = [HEADER, _row("**dev** (tuned on)", metrics(everything))]
    lines += [_row(f"&nbsp;&nbsp;{name}", metrics(outcomes)) for name, outcomes in dev.items()]
    results = {"dev": metrics(everything), "dev_sets": {n: metrics(o) for n, o in dev.items()}}
    if typos is not None:
        results["dev_typos"] = metrics(typos)
        lines.append(_row("&nbsp;&nbsp;dev with typos injected (seeded)", results["dev_typos"]))
    if chinese_typos:
        results["dev_chinese_typos"] = metrics(chinese_typos)
        lines.append(_row("&nbsp;&nbsp;dev with slips of pinyin input injected (seeded)",
                          results["dev_chinese_typos"]))
    if test is not None:
        results["test"] = metrics(test)
        lines.append(_row("**test** (frozen, never tuned on)", results["test"]))
        for origin, m in breakdown(test, lambda q: q.origin).items():
            lines.append(_row(f"&nbsp;&nbsp;test, {origin}", m))
            results[f"test_{origin}"] = m
        results["gap"] = results["dev"]["top1"] - results["test"]["top1"]
        lines += ["", f"Gap: dev top-1 - test top-1 = {100 * results['gap']:+.1f} points."]
    return "\n".join(lines), results


def test_details(test: list[Outcome]) -> str:
    """The test set by language and kind: aggregates only, so nobody tunes on its questions."""
    lines = ["## Test set (frozen): aggregates only", "", "### By language", "", HEADER]
    lines += [_row(k, m) for k, m in breakdown(test, lambda q: q.lang).items()]
    lines += ["", "### By kind of question", "", HEADER]
    lines += [_row(k, m) for k, m in breakdown(test, lambda q: q.kind).items()]
    return "\n".join(lines)


def answers_of(dev: dict[str, list[Outcome]]) -> dict[str, dict]:
    """Each development question's answer, keyed by set, question and context: what `eval --answers` writes and
    `--compare` reads back. The frozen test set is never written: nobody tunes on its questions."""
    return {f"{name}|{o.question.q}|{o.question.context or ''}": {
        "kind": o.answer.kind.value, "labels": o.labels[:3], "rank": o.rank,
        "right": o.declined if not o.question.in_scope else o.rank == 1}
        for name, outcomes in dev.items() for o in outcomes}


def compare(before: dict[str, dict], after: dict[str, dict]) -> str:
    """The questions answered right in one and not the other, then how many others moved: what a change did,
    question by question, beside the aggregates (a refit moves a few near the bar by itself)."""
    common = [k for k in after if k in before]
    lines, moved, gained = [], 0, 0
    for key in common:
        a, b = before[key], after[key]
        if a["right"] != b["right"]:
            gained += b["right"]
            name, q, _ = key.split("|", 2)
            was, now = a["labels"][:1] or [a["kind"]], b["labels"][:1] or [b["kind"]]
            lines.append(f"- {'gained' if b['right'] else 'lost'} ({name}): {q[:100]!r} "
                         f"{a['kind']} {was[0]} → {b['kind']} {now[0]}")
        elif (a["kind"], a["labels"]) != (b["kind"], b["labels"]):
            moved += 1
    head = (f"{len(common)} questions in both: {gained} gained, {len(lines) - gained} lost, "
            f"{moved} more answered otherwise (still right or still wrong)")
    return "\n".join([head, *lines])


def load_for_eval(args, settings: Settings) -> tuple[dict[str, list[DevQuestion]], list[DevQuestion] | None,
                                                     Assistant]:
    """What `eval` scores: the development sets by file name, the frozen test set (None with --no-test),
    and the assistant as it ships, its embeddings cached across runs over the same questions."""
    from retrieval.loading import load_assistant, make_embedder

    dev_paths = [Path(p) for p in args.set] if args.set else list(DEV_SETS)
    dev_sets = {path.name: load_dev_set(path) for path in dev_paths}
    test_path = Path(args.test) if args.test else TEST_SET
    test = None if args.no_test or not test_path.exists() else load_dev_set(test_path)
    return dev_sets, test, load_assistant(settings, embedder=CachingEmbedder(make_embedder(settings)))


def cmd_eval(args, settings: Settings, out: TextIO) -> int:
    as_json = getattr(args, "json", False)
    before = None
    if getattr(args, "compare", None):  # read first: a wrong path is said before minutes of scoring, not after
        try:
            before = json.loads(Path(args.compare).read_text(encoding="utf-8"))
            if not isinstance(before, dict) or not all(isinstance(v, dict) and "right" in v for v in before.values()):
                raise ValueError("not a file that eval --answers wrote")
        except (OSError, ValueError) as exc:
            print(f"error: --compare {args.compare}: {exc}", file=sys.stderr)
            return 2
    turn_sets = {}
    if getattr(args, "turns", None):  # read first too
        from retrieval.measure.turns import load_turns
        try:
            turn_sets = {Path(p).name: load_turns(Path(p)) for p in args.turns}
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            print(f"error: --turns: {exc}", file=sys.stderr)
            return 2
    dev_sets, test, assistant = load_for_eval(args, settings)
    questions = [q for qs in dev_sets.values() for q in qs]
    if getattr(args, "calibrate", False):  # its weights go with the report, or beside the JSON on stderr
        assistant.decision = calibrate(assistant, questions, sys.stderr if as_json else out)
    baselines = []
    if not args.no_baselines:
        from retrieval.measure.baselines import build_baselines
        baselines = build_baselines(assistant.kb)
    dev_outcomes = {name: run(assistant, qs) for name, qs in dev_sets.items()}
    test_outcomes = run(assistant, test) if test is not None else None
    typo_outcomes = run(assistant, with_typos(questions))
    chinese_outcomes = run(assistant, with_chinese_typos(questions))
    table, summary = side_by_side(dev_outcomes, test_outcomes, typo_outcomes, chinese_outcomes)
    everything = [o for outcomes in dev_outcomes.values() for o in outcomes]
    text, results = report(assistant, questions, everything, baselines, args.worst)
    numbers = {**results, **summary}
    if as_json:  # as `check --json`: one JSON object on standard output, instead of the Markdown
        print(json.dumps(numbers, ensure_ascii=False), file=out)
    else:
        print("## Development and test sets\n\n" + table + "\n\n" + text, file=out)
        if test_outcomes is not None:
            print("\n" + test_details(test_outcomes), file=out)
    if turn_sets:
        from retrieval.measure.turns import score, table
        turns = {name: score(assistant, ts) for name, ts in turn_sets.items()}
        numbers["turns"] = {name: {k: list(v) for k, v in s.items()} for name, s in turns.items()}
        if not as_json:
            print("\n## Conversation turns\n\n" + table(turns), file=out)
    if args.save:
        Path(args.save).write_text(json.dumps(numbers, indent=2), encoding="utf-8")
    answers = answers_of(dev_outcomes)
    if before is not None:
        print(f"\n## Compared with {args.compare}\n\n" + compare(before, answers),
              file=sys.stderr if as_json else out)
    if getattr(args, "answers", None):
        Path(args.answers).write_text(json.dumps(answers, ensure_ascii=False, indent=0), encoding="utf-8")
    return 0
