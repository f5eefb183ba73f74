"""`python -m retrieval inbox`: the operator's inbox on the command line, for people who prefer git.

    python -m retrieval inbox                          # the groups, biggest first, and reported mistakes
    python -m retrieval inbox attach GROUP ENTRY       # the group's questions become phrasings of ENTRY
    python -m retrieval inbox out-of-scope GROUP       # ... questions the assistant declines
    python -m retrieval inbox new-entry GROUP          # ... a draft entry in knowledge/drafts/ for a person

GROUP is a group's id (g-3fa2c1) or its number in the list. Each action writes one file, checked by the strict
loader, and is recorded with who (--by, default the login name) and when. --measure scores the development and
test sets before and after first, and saves nothing when a score drops (unless --anyway).
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import TextIO

from retrieval.learn.files import Action
from retrieval.learn.inbox import Group, find, gather, reader
from retrieval.settings import Settings

ACTIONS = {"attach": "attach", "out-of-scope": "out_of_scope", "new-entry": "new_entry"}
EXAMPLES = 3


def add_parser(sub) -> None:
    inbox = sub.add_parser("inbox", help="what went wrong, grouped; file a group as phrasings, off-topic or a draft")
    inbox.add_argument("--json", action="store_true", help="print the groups as one JSON object")
    inbox.add_argument("--limit", type=int, default=30, help="show at most this many groups (default 30)")
    actions = inbox.add_subparsers(dest="inbox_action")
    for name, help_text in (("attach", "the group's questions become phrasings of ENTRY"),
                            ("out-of-scope", "the group's questions become questions the assistant declines"),
                            ("new-entry", "write a draft entry with the group's questions, for a person to complete")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("group", help="the group's id (g-...) or its number in `retrieval inbox`")
        if name == "attach":
            action.add_argument("entry", help="the entry id, e.g. gv-topup-steps")
        action.add_argument("--by", default=None, help="who acts (default: your login name)")
        action.add_argument("--measure", action="store_true",
                            help="score the development and test sets before and after first (a few minutes)")
        action.add_argument("--anyway", action="store_true", help="with --measure: save even if a score drops")


def _show(groups: list[Group], reports, out: TextIO, limit: int) -> None:
    total = sum(g.size for g in groups)
    print(f"{len(groups)} group(s), {total} question(s) in the inbox", file=out)
    for n, g in enumerate(groups[:limit], 1):
        reasons = ", ".join(f"{r} {c}" for r, c in g.reasons.items())
        print(f"\n{n:>3}  {g.id}  {g.summary()}", file=out)
        print(f"     first {g.first_seen[:16]}, last {g.last_seen[:16]} · {reasons}", file=out)
        examples = " | ".join(f"{text} ×{count}" for text, count in g.wordings()[:EXAMPLES])
        print(f"     e.g. {examples}", file=out)
        chosen = ", ".join(f"{e} ×{c}" for e, c in g.chosen()) or "-"
        print(f"     answered with: {chosen}; suggested: {', '.join(g.suggested()[:3]) or '-'}", file=out)
        for comment in g.comments()[:EXAMPLES]:
            print(f"     👎 {comment}", file=out)
    if len(groups) > limit:
        print(f"\n... and {len(groups) - limit} more (--limit)", file=out)
    if len(reports):
        print(f"\nReported mistakes ({len(reports)}):", file=out)
        for row in reports.itertuples(index=False):
            print(f"  {row.entry_id}: {row.text}  ({row.reported_at[:16]})", file=out)


def _as_json(groups: list[Group], reports) -> dict:
    return {"groups": [{"id": g.id, "label": g.label, "questions": g.size, "users": g.users,
                        "first_seen": g.first_seen, "last_seen": g.last_seen, "reasons": g.reasons,
                        "wordings": g.wordings(), "answered_with": g.chosen(), "suggested": g.suggested()[:5],
                        "comments": g.comments()} for g in groups],
            "reports": [{"entry_id": r.entry_id, "text": r.text, "reported_at": r.reported_at}
                        for r in reports.itertuples(index=False)]}


def _measure(action: Action, settings: Settings, groups: list[Group], out: TextIO) -> list[str]:
    from retrieval.learn.effect import Evaluator, measure
    from retrieval.loading import load_assistant

    assistant = load_assistant(settings, progress=lambda message: print(message, file=sys.stderr, flush=True))
    effect = measure(action, assistant, settings.knowledge_dir, Evaluator(assistant.embedder), groups,
                     progress=lambda message: print(message, file=sys.stderr, flush=True))
    print("| set | top-1 | top-3 | MRR | out-of-scope declined | in-scope declined |\n|---|---|---|---|---|---|",
          file=out)
    for name, scores in (("dev before", effect.before.dev), ("dev after", effect.after.dev),
                         ("test before", effect.before.test), ("test after", effect.after.test)):
        if scores:
            print(f"| {name} | {scores['top1']:.3f} | {scores['top3']:.3f} | {scores['mrr']:.3f} | "
                  f"{scores['oos_declined']:.3f} | {scores['in_scope_declined']:.3f} |", file=out)
    for change in effect.groups:
        if change.changed:
            print(f"{change.group_id} {change.label}: answered {change.answered_before}/{change.asked} -> "
                  f"{change.answered_after}/{change.asked} ({change.entry_before} -> {change.entry_after})", file=out)
    for question in effect.in_test_set:
        print(f"warning: {question!r} is in the frozen test set: filing it scores the test set on its own question",
              file=out)
    return effect.worse()


def cmd_inbox(args, settings: Settings, out: TextIO) -> int:
    from retrieval.knowledge import load_knowledge
    from retrieval.learn.live import file_action
    from retrieval.loading import keep_word_cache_in, make_embedder
    from retrieval.store import StoreError, open_store, queries

    store = open_store(settings)
    try:
        # Grouping needs the model and the knowledge, not the index (which may be out of date after an action).
        keep_word_cache_in(settings.data_dir)
        kb = load_knowledge(settings.knowledge_dir)
        groups = gather(store, reader(kb, settings.max_question_chars), make_embedder(settings).embed_queries)
        if not args.inbox_action:
            reports = queries.open_reports(store)
            if args.json:
                print(json.dumps(_as_json(groups, reports), ensure_ascii=False), file=out)
            else:
                _show(groups, reports, out, max(1, args.limit))
            return 0
        group = find(groups, args.group)
        entry = getattr(args, "entry", None)
        if entry is not None and entry not in kb.by_id:
            near = [e for e in kb.by_id if entry.split("-")[0] in e][:8]
            print(f"error: no entry {entry!r} in {settings.knowledge_dir}" + (f" (did you mean {', '.join(near)}?)"
                                                                              if near else ""), file=sys.stderr)
            return 2
        hint = entry or (group.suggested()[:1] or [None])[0]
        action = Action(ACTIONS[args.inbox_action], group.id, group.questions(), args.by or getpass.getuser(),
                        entry_id=hint)
        if args.measure:
            worse = _measure(action, settings, groups, out)
            if worse and not args.anyway:
                print("not saved: " + "; ".join(worse) + " (--anyway saves it all the same)", file=out)
                return 1
        path, _, action_id = file_action(action, settings.knowledge_dir, store,
                                         [i.interaction_id for i in group.items], kb=kb)
        what = {"attach": f"{action.count} phrasing(s) of {action.entry_id}",
                "out_of_scope": f"{action.count} question(s) to decline",
                "new_entry": f"a draft with {action.count} question(s): complete it, then move it into a provider file"}
        print(f"wrote {path}: {what[action.kind]} (action {action_id}, by {action.actor})", file=out)
        if action.kind != "new_entry":
            print("The index is rebuilt at the next start (or `python -m retrieval prepare`); a running chat server"
                  " picks it up from the insights page.", file=out)
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: nothing was saved: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
