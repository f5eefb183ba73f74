"""Knowledge base: read knowledge/*.yaml into typed records, or say exactly what is wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LANGUAGES = ("zh", "en")
CATALOG_FILE = "catalog.yaml"
MESSAGES_FILE = "messages.yaml"
OUT_OF_SCOPE_FILE = "out_of_scope.yaml"
CONVERSATION_FILE = "conversation.yaml"
VOCABULARY_FILE = "vocabulary.yaml"
SPECIAL_FILES = (CATALOG_FILE, MESSAGES_FILE, OUT_OF_SCOPE_FILE, CONVERSATION_FILE, VOCABULARY_FILE)
PROVIDER_KINDS = ("general", "virtual_number", "retired_voip", "business_phone", "carrier_prepaid", "mvno_prepaid")
PROVIDER_STATUSES = ("active", "retired")
ENTRY_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
URL = re.compile(r"^https://[^\s]+$")


class KnowledgeError(Exception):
    """The knowledge base cannot be used; `errors` lists every problem as 'file: entry: field: message'."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = "\n".join(f"  - {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"the knowledge base has {len(errors)} error(s):\n{shown}{more}")


@dataclass(frozen=True)
class Step:
    do: str
    expect: str = ""
    if_not: str = ""


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Topic:
    id: str
    name: dict[str, str]
    needs_provider: bool


@dataclass(frozen=True)
class Provider:
    id: str
    name: dict[str, str]
    kind: str
    status: str
    aliases: tuple[str, ...]
    support_url: str


@dataclass(frozen=True)
class Entry:
    id: str
    provider: str
    topic: str
    checked: dt.date
    title: dict[str, str]
    questions: dict[str, tuple[str, ...]]
    answer: dict[str, str]
    steps: dict[str, tuple[Step, ...]]
    links: tuple[Link, ...]
    sources: tuple[str, ...]
    related: tuple[str, ...] = ()
    file: str = ""


@dataclass(frozen=True)
class SmallTalk:
    """A greeting, thanks, "who are you": what people say and the short answer they get."""

    id: str
    questions: dict[str, tuple[str, ...]]
    answer: dict[str, str]


@dataclass(frozen=True)
class TermGroup:
    """Words people use for the same thing; each variant reads as the canonical word of its language."""

    id: str
    canonical: dict[str, str]
    variants: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Conversation:
    """conversation.yaml: small talk, the words of a follow-up, and what counts as a known word."""

    small_talk: dict[str, SmallTalk] = field(default_factory=dict)
    follow_up_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    known_word_zipf: float = 3.0
    provider_order: tuple[str, ...] = ()  # the "which provider?" buttons, first to last


@dataclass(frozen=True)
class KnowledgeBase:
    providers: dict[str, Provider]
    topics: dict[str, Topic]
    entries: tuple[Entry, ...]
    messages: dict[str, dict[str, str]]
    required: dict[str, tuple[str, ...]]
    digest: str
    provider_ids: tuple[str, ...] = ()  # every provider of the contract, with or without a guide yet
    off_topic: dict[str, tuple[str, ...]] = field(default_factory=dict)  # questions to decline, per language
    name_suffixes: tuple[str, ...] = ()  # words read as part of a provider's name ("预付卡" in "Verizon预付卡")
    conversation: Conversation = field(default_factory=Conversation)
    vocabulary: tuple[TermGroup, ...] = ()
    by_id: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id.update({e.id: e for e in self.entries})

    def message(self, key: str, language: str, **values: Any) -> str:
        """A sentence of the assistant's own, from messages.yaml, with {placeholders} filled."""
        return self.messages[key][language].format(**values)

    def entries_for(self, provider: str | None = None, topic: str | None = None) -> list[Entry]:
        return [e for e in self.entries
                if (provider is None or e.provider == provider) and (topic is None or e.topic == topic)]

    def required_cells(self) -> list[tuple[str, str]]:
        """Every (provider, topic) the knowledge base must cover."""
        cells = []
        for provider in self.provider_ids or tuple(self.providers):
            topics = self.topics if provider == "general" else (
                self.required.get("every_provider", ()) + self.required.get(provider, ()))
            cells += [(provider, t) for t in topics]
        return cells

    def missing_cells(self) -> list[tuple[str, str]]:
        have = {(e.provider, e.topic) for e in self.entries}
        return [cell for cell in self.required_cells() if cell not in have]


class _Errors:
    """Collects problems so one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, entry: str, fld: str, message: str) -> None:
        self.items.append(f"{file}: {entry}: {fld}: {message}")


class _Reader:
    """Checks the shape of one YAML document, recording errors against a file and entry."""

    def __init__(self, errors: _Errors, file: str):
        self.errors, self.file = errors, file

    def err(self, entry: str, fld: str, message: str) -> None:
        self.errors.add(self.file, entry, fld, message)

    def mapping(self, value: Any, entry: str, fld: str, allowed: set[str], required: set[str]) -> dict | None:
        if not isinstance(value, dict):
            self.err(entry, fld, f"expected a mapping, got {type(value).__name__}")
            return None
        for key in value:
            if key not in allowed:
                self.err(entry, f"{fld}.{key}" if fld else str(key),
                         f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            self.err(entry, f"{fld}.{key}" if fld else key, "missing")
        return value

    def text(self, value: Any, entry: str, fld: str) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.err(entry, fld, "empty text")
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.err(entry, fld, f"expected text, got {type(value).__name__}")
            return ""
        return str(value).strip()

    def per_language(self, value: Any, entry: str, fld: str, read: Callable[[Any, str], Any]) -> dict[str, Any]:
        """A value given once per language: {zh: ..., en: ...}."""
        out: dict[str, Any] = {}
        if self.mapping(value, entry, fld, set(LANGUAGES), set()) is None:
            return out
        for lang in LANGUAGES:
            if lang not in value:
                self.err(entry, f"{fld}.{lang}", "missing language")
            else:
                out[lang] = read(value[lang], f"{fld}.{lang}")
        return out

    def text_list(self, value: Any, entry: str, fld: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.err(entry, fld, "expected a non-empty list")
            return ()
        return tuple(self.text(v, entry, f"{fld}[{i}]") for i, v in enumerate(value))


class _SafeLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a value YAML cannot build (2026-02-30, !!int x) is a YAML error with a position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors raise whatever a bad value provokes
            shown = repr(node.value) if isinstance(node.value, str) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} cannot be read as {node.tag.rsplit(':', 1)[-1]} ({exc})",
                node.start_mark) from exc


def _load_yaml(path: Path, errors: _Errors) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except UnicodeDecodeError as exc:
        errors.add(path.name, "-", "-", f"not UTF-8 text ({exc.reason})")
    except RecursionError:
        errors.add(path.name, "-", "-", "invalid YAML: nested too deeply to read")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.add(path.name, "-", "-", f"invalid YAML at {where}: {problem}")
    return None


def _read_catalog(doc: Any, r: _Reader) -> tuple[list[str], dict[str, Topic], dict[str, tuple[str, ...]]]:
    providers: list[str] = []
    topics: dict[str, Topic] = {}
    required: dict[str, tuple[str, ...]] = {}
    allowed = {"providers", "topics", "required_topics", "name_suffixes"}
    if r.mapping(doc, "-", "", allowed, {"providers", "topics"}) is None:
        return providers, topics, required
    providers = list(r.text_list(doc.get("providers"), "-", "providers"))
    raw_topics = doc.get("topics") or []
    if not isinstance(raw_topics, list):
        r.err("-", "topics", f"expected a list of topics, got {type(raw_topics).__name__}")
        raw_topics = []
    for i, t in enumerate(raw_topics):
        where = f"topics[{i}]"
        if r.mapping(t, where, "", {"id", "name", "needs_provider"}, {"id", "name", "needs_provider"}) is None:
            continue
        tid = r.text(t.get("id"), where, "id")
        name = r.per_language(t.get("name"), tid or where, "name", lambda v, f, w=tid or where: r.text(v, w, f))
        if not isinstance(t.get("needs_provider"), bool):
            r.err(tid or where, "needs_provider", "expected true or false")
        topics[tid] = Topic(tid, name, bool(t.get("needs_provider")))
    req = doc.get("required_topics") or {}
    if r.mapping(req, "-", "required_topics", {"every_provider", *providers}, set()) is not None:
        for key, value in req.items():
            required[key] = r.text_list(value, "-", f"required_topics.{key}")
            for t in required[key]:
                if t not in topics:
                    r.err("-", f"required_topics.{key}", f"unknown topic {t!r}")
    return providers, topics, required


# Every sentence the code shows, with the {placeholders} it fills in.
MESSAGES = {
    "decline": set(), "decline_support": {"provider", "url"}, "ask_provider": set(), "clarify": set(),
    "steps_heading": set(), "links_heading": set(), "checked": {"date"}, "from_general": {"provider"},
    "truncated": {"limit"}, "secret_warning": set(), "empty_question": set(), "walk_me": set(),
    "step_progress": {"n", "total"}, "step_done": set(), "step_back": set(), "step_failed": set(),
    "step_expect": {"text"}, "step_if_not": {"text"}, "payment_help_heading": set(), "final_check": set(),
    "walk_finished": set(), "walk_exit": set(), "related_heading": set(),
    "starters": set(), "welcome": set(), "provider_now": set(), "comment_prompt": set(),
    "meanwhile_general": set(), "more_choices": set(), "decline_suggest": set(), "not_understood": set(),
}


def _placeholders(text: str) -> set[str] | None:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return None


def _read_messages(doc: Any, r: _Reader) -> dict[str, dict[str, str]]:
    if r.mapping(doc, "-", "", {"messages"}, {"messages"}) is None or not isinstance(doc.get("messages"), dict):
        r.err("-", "messages", "expected a mapping of message keys")
        return {}
    messages = {key: r.per_language(value, key, "text", lambda v, f, k=key: r.text(v, k, f))
                for key, value in doc["messages"].items()}
    for key in sorted(MESSAGES.keys() - messages.keys()):
        r.err(key, "text", "missing (the app shows this message)")
    for key, texts in messages.items():
        names = {lang: _placeholders(text) for lang, text in texts.items()}
        for lang, found in names.items():
            if found is None:
                r.err(key, f"text.{lang}", "unbalanced { or } (write {{ and }} for a literal brace)")
            elif key in MESSAGES and found - MESSAGES[key]:
                allowed = ", ".join(f"{{{n}}}" for n in sorted(MESSAGES[key])) or "none"
                r.err(key, f"text.{lang}", f"unknown placeholder(s) {sorted(found - MESSAGES[key])} "
                                           f"(allowed: {allowed})")
        if None not in names.values() and len({frozenset(n) for n in names.values()}) > 1:
            r.err(key, "text", "the languages use different {placeholders}; keep them identical")
    return messages


def _read_off_topic(doc: Any, r: _Reader) -> dict[str, tuple[str, ...]]:
    if r.mapping(doc, "-", "", {"out_of_scope"}, {"out_of_scope"}) is None:
        return {}
    return r.per_language(doc.get("out_of_scope"), "-", "out_of_scope", lambda v, f: r.text_list(v, "-", f))


def _read_conversation(doc: Any, r: _Reader, known: list[str]) -> Conversation:
    allowed = {"small_talk", "follow_up_words", "known_word_zipf", "provider_order"}
    if r.mapping(doc, "-", "", allowed, allowed - {"provider_order"}) is None:
        return Conversation()
    intents: dict[str, SmallTalk] = {}
    if r.mapping(doc.get("small_talk"), "-", "small_talk", set(doc.get("small_talk") or {}), set()) is not None:
        for key, value in doc["small_talk"].items():
            if r.mapping(value, key, "", {"questions", "answer"}, {"questions", "answer"}) is None:
                continue
            intents[key] = SmallTalk(
                key, r.per_language(value.get("questions"), key, "questions", lambda v, f, k=key: r.text_list(v, k, f)),
                r.per_language(value.get("answer"), key, "answer", lambda v, f, k=key: r.text(v, k, f)))
    words = r.per_language(doc.get("follow_up_words"), "-", "follow_up_words", lambda v, f: r.text_list(v, "-", f))
    zipf = doc.get("known_word_zipf")
    if isinstance(zipf, bool) or not isinstance(zipf, (int, float)) or not 0 <= zipf <= 8:
        r.err("-", "known_word_zipf", f"expected a number from 0 to 8, got {zipf!r}")
        zipf = 3.0
    order = r.text_list(doc["provider_order"], "-", "provider_order") if "provider_order" in doc else ()
    for pid in order:
        if pid not in known or pid == "general":
            r.err("-", "provider_order", f"{pid!r} is not a provider id")
    return Conversation(intents, words, float(zipf), order)


def _read_vocabulary(doc: Any, r: _Reader) -> tuple[TermGroup, ...]:
    if r.mapping(doc, "-", "", {"vocabulary"}, {"vocabulary"}) is None:
        return ()
    if not isinstance(doc.get("vocabulary"), list):
        r.err("-", "vocabulary", "expected a list of groups")
        return ()
    groups, owner = [], {}
    for i, g in enumerate(doc["vocabulary"]):
        where = g.get("id") if isinstance(g, dict) and isinstance(g.get("id"), str) else f"vocabulary[{i}]"
        if r.mapping(g, where, "", {"id", "canonical", "variants"}, {"id", "canonical", "variants"}) is None:
            continue
        group = TermGroup(where, r.per_language(g.get("canonical"), where, "canonical",
                                                lambda v, f, w=where: r.text(v, w, f)),
                          r.per_language(g.get("variants"), where, "variants",
                                         lambda v, f, w=where: r.text_list(v, w, f)))
        for lang, variants in group.variants.items():
            for variant in variants:
                key = (lang, variant.lower())
                if key in owner and owner[key] != where:
                    r.err(where, f"variants.{lang}", f"{variant!r} is also a variant in group {owner[key]!r}")
                owner[key] = where
        groups.append(group)
    return tuple(groups)


PROVIDER_KEYS = {"id", "name", "kind", "status", "aliases", "support_url"}
ENTRY_KEYS = {"id", "topic", "checked", "title", "questions", "answer", "steps", "links", "sources", "related"}
ENTRY_REQUIRED = ENTRY_KEYS - {"steps", "related"}


def _read_provider(doc: Any, r: _Reader, known: list[str]) -> Provider | None:
    p = doc.get("provider")
    if r.mapping(p, "provider", "provider", PROVIDER_KEYS, PROVIDER_KEYS - {"aliases"}) is None:
        return None
    pid = r.text(p.get("id"), "provider", "provider.id")
    if pid and pid not in known:
        r.err("provider", "provider.id", f"unknown provider {pid!r} (known: {', '.join(known)})")
    if p.get("kind") not in PROVIDER_KINDS:
        r.err(pid, "provider.kind", f"{p.get('kind')!r} is not one of {', '.join(PROVIDER_KINDS)}")
    if p.get("status") not in PROVIDER_STATUSES:
        r.err(pid, "provider.status", f"{p.get('status')!r} is not one of {', '.join(PROVIDER_STATUSES)}")
    aliases = p.get("aliases") or []
    if not isinstance(aliases, list):
        r.err(pid, "provider.aliases", "expected a list")
        aliases = []
    url = r.text(p.get("support_url"), pid, "provider.support_url")
    if url and not URL.match(url):
        r.err(pid, "provider.support_url", f"not an https URL: {url!r}")
    name = r.per_language(p.get("name"), pid, "provider.name", lambda v, f: r.text(v, pid, f))
    return Provider(pid, name, str(p.get("kind")), str(p.get("status")),
                    tuple(r.text(a, pid, "provider.aliases") for a in aliases), url)


def _read_steps(value: Any, r: _Reader, eid: str, fld: str) -> tuple[Step, ...]:
    if not isinstance(value, list) or not value:
        r.err(eid, fld, "empty step list")
        return ()
    steps = []
    for i, s in enumerate(value):
        where = f"{fld}[{i}]"
        if isinstance(s, str):
            s = {"do": s}
        if r.mapping(s, eid, where, {"do", "expect", "if_not"}, {"do"}) is None:
            continue
        steps.append(Step(r.text(s.get("do"), eid, f"{where}.do"),
                          *(r.text(s[k], eid, f"{where}.{k}") if k in s else "" for k in ("expect", "if_not"))))
    return tuple(steps)


def _read_links(value: Any, r: _Reader, eid: str) -> tuple[Link, ...]:
    if not isinstance(value, list) or not value:
        r.err(eid, "links", "expected at least one official link")
        return ()
    links = []
    for i, link in enumerate(value):
        if r.mapping(link, eid, f"links[{i}]", {"title", "url"}, {"title", "url"}) is None:
            continue
        url = r.text(link.get("url"), eid, f"links[{i}].url")
        if url and not URL.match(url):
            r.err(eid, f"links[{i}].url", f"not an https URL: {url!r}")
        links.append(Link(r.text(link.get("title"), eid, f"links[{i}].title"), url))
    return tuple(links)


def _read_entry(e: Any, r: _Reader, provider: str, topics: dict[str, Topic], index: int) -> Entry | None:
    eid = e.get("id") if isinstance(e, dict) and isinstance(e.get("id"), str) else f"entries[{index}]"
    if r.mapping(e, eid, "", ENTRY_KEYS, ENTRY_REQUIRED) is None:
        return None
    if not ENTRY_ID.match(eid):
        r.err(eid, "id", "use lowercase letters, digits and single hyphens")
    topic = e.get("topic")
    if not isinstance(topic, str) or topic not in topics:
        r.err(eid, "topic", f"unknown topic {topic!r}")
    checked = e.get("checked")
    if not isinstance(checked, dt.date):
        r.err(eid, "checked", f"expected a date YYYY-MM-DD, got {checked!r}")
        checked = dt.date.min

    def text(v: Any, f: str) -> str:
        return r.text(v, eid, f)

    def texts(v: Any, f: str) -> tuple[str, ...]:
        return r.text_list(v, eid, f)

    steps = r.per_language(e["steps"], eid, "steps", lambda v, f: _read_steps(v, r, eid, f)) if "steps" in e else {}
    if len({len(s) for s in steps.values()}) > 1:
        r.err(eid, "steps", "the languages have different numbers of steps")
    sources = texts(e.get("sources"), "sources")
    related = texts(e["related"], "related") if "related" in e else ()
    return Entry(
        id=eid, provider=provider, topic=str(topic), checked=checked,
        title=r.per_language(e.get("title"), eid, "title", text),
        questions=r.per_language(e.get("questions"), eid, "questions", texts),
        answer=r.per_language(e.get("answer"), eid, "answer", text),
        steps=steps, links=_read_links(e.get("links"), r, eid), sources=sources,
        related=related, file=r.file)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Read and validate every knowledge file; raise KnowledgeError listing all problems."""
    directory = Path(directory)
    errors = _Errors()
    paths = sorted(directory.glob("*.yaml"))
    names = {p.name for p in paths}
    for needed in (CATALOG_FILE, MESSAGES_FILE):
        if needed not in names:
            errors.add(needed, "-", "-", f"file missing in {directory}")
    if errors.items:
        raise KnowledgeError(errors.items)
    docs = {p.name: _load_yaml(p, errors) for p in paths}
    known, topics, required = _read_catalog(docs[CATALOG_FILE], _Reader(errors, CATALOG_FILE))
    catalog = docs[CATALOG_FILE] if isinstance(docs[CATALOG_FILE], dict) else {}
    suffixes = _Reader(errors, CATALOG_FILE).text_list(catalog["name_suffixes"], "-", "name_suffixes") \
        if "name_suffixes" in catalog else ()
    messages = _read_messages(docs[MESSAGES_FILE], _Reader(errors, MESSAGES_FILE))
    off_topic = _read_off_topic(docs[OUT_OF_SCOPE_FILE], _Reader(errors, OUT_OF_SCOPE_FILE)) \
        if OUT_OF_SCOPE_FILE in docs else {}
    conversation = _read_conversation(docs[CONVERSATION_FILE], _Reader(errors, CONVERSATION_FILE), known) \
        if CONVERSATION_FILE in docs else Conversation()
    vocabulary = _read_vocabulary(docs[VOCABULARY_FILE], _Reader(errors, VOCABULARY_FILE)) \
        if VOCABULARY_FILE in docs else ()
    providers: dict[str, Provider] = {}
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for name, doc in docs.items():
        if name in SPECIAL_FILES:
            continue
        r = _Reader(errors, name)
        if doc is None:
            if not any(item.startswith(f"{name}: ") for item in errors.items):
                r.err("-", "-", "the file is empty")
            continue
        if r.mapping(doc, "-", "", {"provider", "entries"}, {"provider", "entries"}) is None:
            continue
        provider = _read_provider(doc, r, known)
        if provider is None:
            continue
        if provider.id in providers:
            r.err("provider", "provider.id", f"provider {provider.id!r} is already defined in another file")
        providers[provider.id] = provider
        if not isinstance(doc.get("entries"), list) or not doc["entries"]:
            r.err(provider.id, "entries", "expected a non-empty list of entries")
            continue
        for i, raw in enumerate(doc["entries"]):
            entry = _read_entry(raw, r, provider.id, topics, i)
            if entry is None:
                continue
            if entry.id in seen:
                r.err(entry.id, "id", f"duplicate id (also in {seen[entry.id]})")
            seen.setdefault(entry.id, name)
            entries.append(entry)
    ids = {e.id for e in entries}
    for e in entries:
        for rel in e.related:
            if rel not in ids:
                errors.add(e.file, e.id, "related", f"unknown entry id {rel!r}")
    if errors.items:
        raise KnowledgeError(errors.items)
    return KnowledgeBase(providers=dict(sorted(providers.items(), key=lambda kv: known.index(kv[0]))),
                         topics=topics, entries=tuple(entries), messages=messages, off_topic=off_topic,
                         name_suffixes=suffixes, conversation=conversation, vocabulary=vocabulary,
                         required=required, provider_ids=tuple(known),
                         # the assistant's own sentences are not indexed: editing them rebuilds nothing
                         digest=_digest([p for p in paths if p.name != MESSAGES_FILE]))
