"""Command line: check the knowledge base, prepare the model and index, ask questions."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import TextIO

from retrieval.knowledge import LANGUAGES, KnowledgeError, load_knowledge, older_than_years, parse_source
from retrieval.serving.embedder import ModelError
from retrieval.serving.index import IndexStoreError
from retrieval.settings import Settings


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def coverage_table(kb) -> str:
    """Providers down, topics across: which languages each cell has ('zh+en'), '-' for none, '!' when required."""
    topics = list(kb.topics)
    required = set(kb.required_cells())
    cells: dict[tuple[str, str], set[str]] = {}
    for e in kb.entries:
        cells.setdefault((e.provider, e.topic), set()).update(lang for lang in LANGUAGES if lang in e.answer)
    providers = kb.provider_ids or tuple(kb.providers)
    width = max(len(p) for p in providers) + 1
    short = ["_".join(part[:3] for part in t.split("_"))[:7] for t in topics]
    lines = [" " * width + " ".join(f"{s:>7}" for s in short)]
    for p in providers:
        row = []
        for t in topics:
            langs = cells.get((p, t))
            mark = "+".join(sorted(langs, key=LANGUAGES.index)) if langs else ("!" if (p, t) in required else "-")
            row.append(f"{mark:>7}")
        lines.append(f"{p:<{width}}" + " ".join(row))
    return "\n".join(lines)


STALE_DAYS = 180  # an entry nobody has re-checked for longer gets a warning (an error with --strict)
OLD_SOURCE_YEARS = 2


def audit(kb, today: dt.date) -> dict[str, list]:
    """What `check` reports beyond the schema: entries not re-checked for STALE_DAYS, sources outside the
    provider's own domains (providers that declare none, like `general`, are skipped), and entries whose
    oldest dated page is more than OLD_SOURCE_YEARS old (their answers say so)."""
    stale = [f"{e.file}: {e.id}: checked: last checked {e.checked.isoformat()}, "
             f"{(today - e.checked).days} days ago (more than {STALE_DAYS})"
             for e in kb.entries if (today - e.checked).days > STALE_DAYS]
    off_domain = [{"provider": e.provider, "entry": e.id, "source": text}
                  for e in kb.entries if kb.providers[e.provider].domains
                  for text in e.sources if not kb.providers[e.provider].owns(text.split(" ", 1)[0])]
    old = [{"entry": e.id, "source": text} for e in kb.entries for text in e.sources
           if (src := parse_source(text)) and older_than_years(src.date, OLD_SOURCE_YEARS, today)]
    return {"stale": stale, "off_domain": off_domain, "old_sources": old}


def _print_off_domain(off_domain: list[dict], out: TextIO) -> None:
    """One line per provider and cited page, with the entries that cite it."""
    cited: dict[tuple[str, str], list[str]] = {}
    for item in off_domain:
        cited.setdefault((item["provider"], item["source"]), []).append(item["entry"])
    print(f"\n{len(off_domain)} source(s) not on the provider's own domains ({len(cited)} distinct); "
          "an answer resting on one says whose page it is:", file=out)
    for (provider, source), entries in sorted(cited.items()):
        print(f"  {provider}: {source} <- {', '.join(entries)}", file=out)


def cmd_check(args, settings: Settings, out: TextIO) -> int:
    try:
        kb = load_knowledge(settings.knowledge_dir)
    except KnowledgeError as exc:
        if args.json:
            print(json.dumps({"ok": False, "errors": exc.errors, "entries": []}, ensure_ascii=False), file=out)
        else:
            print(exc, file=out)
        return 1
    missing = kb.missing_cells()
    errors = [f"{p}.yaml: {p}/{t}: topic: required topic has no entry" for p, t in missing]
    found = audit(kb, dt.date.today())
    warnings = found["stale"]
    if args.strict:
        errors, warnings = errors + warnings, []
    entries = [{"id": e.id, "provider": e.provider, "topic": e.topic,
                "languages": [lang for lang in LANGUAGES if lang in e.answer], "checked": e.checked.isoformat(),
                "sources": list(e.sources)}
               for e in kb.entries]
    if args.json:
        print(json.dumps({"ok": not errors, "errors": errors, "entries": entries, "warnings": warnings,
                          "off_domain": found["off_domain"], "old_sources": found["old_sources"]},
                         ensure_ascii=False), file=out)
        return 0 if not errors else 1
    print(coverage_table(kb), file=out)
    print(f"\n{len(kb.entries)} entries, {len(kb.providers)} providers, {len(kb.topics)} topics "
          "(zh+en: both languages; !: required but missing; -: not covered)", file=out)
    _print_off_domain(found["off_domain"], out)
    old_entries = {item["entry"] for item in found["old_sources"]}
    print(f"\n{len(old_entries)} entries cite a page more than {OLD_SOURCE_YEARS} years old "
          "(their answers say so under the text).", file=out)
    for w in warnings:
        print(f"warning: {w}", file=out)
    for e in errors:
        print(f"error: {e}", file=out)
    print("ok" if not errors else f"{len(errors)} error(s)", file=out)
    return 0 if not errors else 1


def _answer_line(assistant, line: str) -> dict:
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"invalid JSON: {exc.msg} at column {exc.colno}"}
    if not isinstance(request, dict) or not isinstance(request.get("question"), str):
        return {"error": 'expected an object like {"question": "...", "provider": null}'}
    provider = request.get("provider")
    if provider is not None and provider not in assistant.kb.providers:
        return {"error": f"unknown provider {provider!r}"}
    language = request.get("language")
    if language is not None and language not in LANGUAGES:
        return {"error": f"unknown language {language!r} (use zh or en)"}
    return assistant.ask(request["question"], provider=provider, language=language).to_json()


def cmd_ask(args, settings: Settings, out: TextIO, stdin: TextIO) -> int:
    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=_progress)
    if args.jsonl:
        for line in stdin:
            if line.strip():
                print(json.dumps(_answer_line(assistant, line), ensure_ascii=False), file=out, flush=True)
        return 0
    question = " ".join(args.question) if args.question else stdin.read()
    answer = assistant.ask(question, provider=args.provider, language=args.language)
    for notice in answer.notices:
        print(notice, file=out)
    print(answer.markdown, file=out)
    for choice in answer.choices:
        print(f"  → {choice.label}", file=out)
    return 0


def cmd_prepare(args, settings: Settings, out: TextIO) -> int:
    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=_progress)
    m = assistant.index.manifest
    print(f"ready: {len(assistant.kb.entries)} entries, {m.keys} vectors, model {m.model} ({m.dim} dims)", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m retrieval", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate knowledge/ and print the coverage table")
    check.add_argument("--json", action="store_true", help="print the contract's JSON object")
    check.add_argument("--strict", action="store_true",
                       help=f"entries not re-checked for more than {STALE_DAYS} days are errors, not warnings")
    ask = sub.add_parser("ask", help="answer a question (or a JSON-lines stream with --jsonl)")
    ask.add_argument("question", nargs="*")
    ask.add_argument("--jsonl", action="store_true", help="read JSON lines on stdin, write one JSON line each")
    ask.add_argument("--provider", default=None, help="the provider chosen earlier, e.g. google_voice")
    ask.add_argument("--language", choices=LANGUAGES, default=None)
    sub.add_parser("prepare", help="convert the model and build the index if needed")
    ev = sub.add_parser("eval", help="score the development sets and the frozen test set, side by side")
    ev.add_argument("--set", action="append", default=None,
                    help="a development question set (repeatable; default eval/dev_set.yaml and eval/dev_more.yaml)")
    ev.add_argument("--test", default=None, help="the frozen test set (default eval/test_set.yaml)")
    ev.add_argument("--no-test", action="store_true", help="score the development sets only")
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument("--worst", type=int, default=15)
    ev.add_argument("--save", default=None, metavar="PATH", help="also write the numbers to this JSON file")
    ev.add_argument("--calibrate", action="store_true", help="grid-search the decline thresholds first")
    bench = sub.add_parser("bench", help="measure speed and memory; write a Markdown report")
    bench.add_argument("--out", default="bench", help="folder for report.md and the plot")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    return p


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command == "check":
            return cmd_check(args, settings, out)
        if args.command == "ask":
            return cmd_ask(args, settings, out, stdin)
        if args.command == "prepare":
            return cmd_prepare(args, settings, out)
        if args.command == "eval":
            from retrieval.measure.evaluate import cmd_eval
            return cmd_eval(args, settings, out)
        if args.command == "bench":
            from retrieval.measure.bench import cmd_bench
            return cmd_bench(args, settings, out)
    except (KnowledgeError, ModelError, IndexStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2
