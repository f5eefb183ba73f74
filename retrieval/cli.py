"""Command line: check the knowledge base, prepare the model and index, ask questions, serve them over HTTP."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import sys
import traceback
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from retrieval.api.request import (
    QuestionRequest,
    RequestError,
    answer,
    bounded,
    known_provider,
    read_request,
    size_limit,
)
from retrieval.knowledge import LANGUAGES, KnowledgeError, load_knowledge, older_than_years, parse_source
from retrieval.serving.embedder import ModelError
from retrieval.serving.index import IndexStoreError
from retrieval.settings import Settings, SettingsError


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


def read_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """Each line of `stream` without its line end; None for a line of more than `limit` bytes, of which no
    more than `limit` bytes are ever held (the rest is read past in pieces of that size)."""
    while raw := stream.readline(limit + 1):
        if raw.endswith(b"\n") or len(raw) <= limit:
            yield raw.rstrip(b"\r\n")
            continue
        while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
            pass
        yield None


def answer_line(assistant, raw: bytes | None, number: int) -> dict:
    """The output object for input line `number`: the answer, or {"error": ..., "line": number}."""
    try:
        if raw is None:
            raise RequestError(f"too large: more than {size_limit(assistant.max_chars)} bytes")
        if not raw.strip():
            raise RequestError('blank line: expected an object like {"question": "...", "provider": null}')
        return answer(assistant, read_request(raw, assistant.kb, assistant.max_chars)).to_json()
    except RequestError as exc:
        return {"error": str(exc), "line": number}
    except Exception as exc:  # a bug must cost one line, not the rest of the stream
        traceback.print_exc(file=sys.stderr)
        return {"error": f"internal error: {type(exc).__name__}", "line": number}


def answer_stream(assistant, stream: BinaryIO, out: TextIO) -> None:
    """One output line for each input line, in order, whatever the input holds."""
    for number, raw in enumerate(read_lines(stream, size_limit(assistant.max_chars)), 1):
        write_json_line(out, answer_line(assistant, raw, number))


def write_json_line(out: TextIO, obj: dict) -> None:
    try:
        line = json.dumps(obj, ensure_ascii=False)
        line.encode("utf-8")
    except UnicodeEncodeError:  # never expected (requests are checked), but a line must still come out
        line = json.dumps(obj)
    print(line, file=out, flush=True)


def _binary(stdin: TextIO | BinaryIO) -> BinaryIO:
    """Standard input as bytes: decoding is ours to do line by line, so bad bytes cost one line."""
    if isinstance(stdin, io.TextIOBase):
        buffer = getattr(stdin, "buffer", None)
        return buffer if buffer is not None else io.BytesIO(stdin.read().encode("utf-8", "surrogatepass"))
    return stdin


def _plain_question(args, stdin: TextIO | BinaryIO, limit: int) -> str:
    """The question typed as arguments or piped as text, read no further than `limit` bytes; bytes that are
    not UTF-8 (which Python hands over as lone surrogates) become U+FFFD."""
    if args.question:
        text = " ".join(args.question)
        try:
            raw = text.encode("utf-8", "surrogateescape")[:limit]
        except UnicodeEncodeError:  # a surrogate that no undecodable byte stands for
            raw = text.encode("utf-8", "replace")[:limit]
    else:
        raw = _binary(stdin).read(limit)
    return raw.decode("utf-8", "replace")


def cmd_ask(args, settings: Settings, out: TextIO, stdin: TextIO | BinaryIO) -> int:
    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=_progress)
    try:
        known_provider(args.provider, assistant.kb)
    except RequestError as exc:  # the same words as for {"provider": "nope"} on a JSON line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.jsonl:
        answer_stream(assistant, _binary(stdin), out)
        return 0
    question = _plain_question(args, stdin, size_limit(assistant.max_chars))
    request = QuestionRequest(bounded(question, assistant.max_chars), provider=args.provider, language=args.language)
    reply = answer(assistant, request)
    for notice in reply.notices:
        print(notice, file=out)
    print(reply.markdown, file=out)
    for choice in reply.choices:
        print(f"  → {choice.label}", file=out)
    return 0


def cmd_prepare(args, settings: Settings, out: TextIO) -> int:
    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=_progress)
    if assistant.index.unsaved:  # preparing is saving: the page and `ask` would each build it again
        print("error: the index was built but could not be saved (said above)", file=sys.stderr)
        return 1
    m = assistant.index.manifest
    print(f"ready: {len(assistant.kb.entries)} entries, {m.keys} vectors, model {m.model} ({m.dim} dims)", file=out)
    return 0


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value!r}")
    return port


def cmd_serve(args, settings: Settings, out: TextIO) -> int:
    from retrieval.api.app import serve

    serve(settings, host=args.host, port=args.port, progress=_progress)
    return 0


def _quiet_stdout() -> None:
    """The reader of our output has gone (`ask ... | head -1`): point standard output at /dev/null so the
    flush at exit cannot fail a second time and print "Exception ignored ... BrokenPipeError"."""
    with contextlib.suppress(OSError, ValueError):  # no real file descriptor (tests pass a StringIO)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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
    serve = sub.add_parser("serve", help="answer over HTTP: POST /v1/ask, GET /healthz, GET /v1/providers, /docs")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    ev = sub.add_parser("eval", help="score the development sets and the frozen test set, side by side")
    ev.add_argument("--set", action="append", default=None,
                    help="a development question set (repeatable; default eval/dev_set.yaml and eval/dev_more.yaml)")
    ev.add_argument("--test", default=None, help="the frozen test set (default eval/test_set.yaml)")
    ev.add_argument("--no-test", action="store_true", help="score the development sets only")
    ev.add_argument("--no-baselines", action="store_true")
    ev.add_argument("--turns", action="append", default=None, metavar="PATH",
                    help="also score a file of conversation turns: follow-ups, small talk (repeatable; "
                         "eval/turns.yaml, eval/turns_blind.yaml)")
    ev.add_argument("--worst", type=int, default=15)
    ev.add_argument("--json", action="store_true",
                    help="print the numbers as one JSON object instead of the report (as check --json)")
    ev.add_argument("--save", default=None, metavar="PATH", help="also write the numbers to this JSON file")
    ev.add_argument("--answers", default=None, metavar="PATH",
                    help="also write each development question's answer to this JSON file (never the test set's)")
    ev.add_argument("--compare", default=None, metavar="PATH",
                    help="list the development questions gained and lost against an --answers file")
    ev.add_argument("--calibrate", action="store_true",
                    help="fit the decline rule on the development sets first (prints its weights)")
    ev.add_argument("--ablation", action="store_true",
                    help="what each part is worth: one taken away at a time, dev and test side by side (minutes)")
    from retrieval.learn.commands import add_parser as add_inbox

    add_inbox(sub)
    bench = sub.add_parser("bench", help="measure speed and memory; write a Markdown report")
    bench.add_argument("--out", default="bench", help="folder for report.md and the plot")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    bench.add_argument("--api", action="store_true", help="only the HTTP API at 1, 8 and 64 clients, beside the engine")
    bench.add_argument("--web", action="store_true", help="only the chat server: CPU per answer and per idle session, "
                       "50 conversations at once")
    bench.add_argument("--memory", action="store_true", help="only the servers' resident memory: after start and "
                       "after 100 questions, and where it goes")
    return p


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "check":
            return cmd_check(args, settings, out)
        if args.command == "ask":
            return cmd_ask(args, settings, out, stdin)
        if args.command == "prepare":
            return cmd_prepare(args, settings, out)
        if args.command == "serve":
            return cmd_serve(args, settings, out)
        if args.command == "eval" and args.ablation:
            if args.json:
                print("error: --ablation prints a table; it has no --json", file=sys.stderr)
                return 2
            from retrieval.measure.ablation import cmd_ablation
            return cmd_ablation(args, settings, out)
        if args.command == "eval":
            from retrieval.measure.evaluate import cmd_eval
            return cmd_eval(args, settings, out)
        if args.command == "inbox":
            from retrieval.learn.commands import cmd_inbox
            return cmd_inbox(args, settings, out)
        if args.command == "bench":
            from retrieval.measure.bench import cmd_bench, cmd_bench_api, cmd_bench_memory, cmd_bench_web
            if args.memory:
                return cmd_bench_memory(args, settings, out)
            return (cmd_bench_api if args.api else cmd_bench_web if args.web else cmd_bench)(args, settings, out)
    except (KnowledgeError, ModelError, IndexStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    return 2
