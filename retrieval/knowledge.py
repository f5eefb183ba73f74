"""Knowledge base: read knowledge/*.yaml into typed records, or say exactly what is wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from retrieval.knowledge_schema import (  # noqa: F401  (re-exported: other modules import these from here)
    CATALOG_FILE,
    CONVERSATION_FILE,
    DRAFTS_DIR,
    ENTRY_ID,
    LANGUAGES,
    LEARNED_DIR,
    MESSAGES_FILE,
    OTHER_SERVICES_FILE,
    OUT_OF_SCOPE_FILE,
    PROVIDER_KINDS,
    PROVIDER_STATUSES,
    SOURCE_KINDS,
    SPECIAL_FILES,
    TOPIC_EXAMPLES_FILE,
    URL,
    VOCABULARY_FILE,
    CatalogFile,
    ConversationFile,
    EntrySchema,
    LearnedFile,
    MessagesFile,
    OtherServicesFile,
    OutOfScopeFile,
    ProviderFile,
    Source,
    TopicExamplesFile,
    VocabularyFile,
    comment_errors,
    latest_day,
    load_yaml,
    older_than_years,
    parse_source,
    validate,
)


class KnowledgeError(Exception):
    """The knowledge base cannot be used; `errors` lists every problem as 'file: entry: field: message'."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = "\n".join(f"  - {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"the knowledge base has {len(errors)} error(s):\n{shown}{more}")


# -- the records other modules use ---------------------------------------------------------------
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
    aliases: tuple[str, ...]
    support_url: str
    domains: tuple[str, ...] = ()  # the provider's own web domains: a source elsewhere is not its own word
    kind: str = ""  # catalog kind: "carrier_prepaid", "mvno_prepaid", "business_phone", "virtual_number"...
    hints: tuple[str, ...] = ()  # words that choose the provider and stay in the question ("voice credit")

    def short_name(self, lang: str) -> str:
        """The name without its explanation in brackets ("Tello（T-Mobile 网络的…）" → "Tello"), for use inside a
        sentence that is itself in brackets."""
        return re.sub(r"\s*[（(][^（）()]*[）)]\s*$", "", self.name[lang]) or self.name[lang]

    def owns(self, url: str) -> bool:
        host = (urlparse(url).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self.domains)


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
    # The phrasings among `questions` that came from knowledge/learned/ (they are at the end of each list).
    learned: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def oldest_source(self) -> Source | None:
        """The dated source whose page is oldest, if any source shows a date."""
        dated = [s for s in map(parse_source, self.sources) if s and s.latest_day]
        return min(dated, key=lambda s: s.latest_day, default=None)


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
class OtherService:
    """A service that is not ours (a carrier outside the US, an app), by the names people write it."""

    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    en: str | None = None  # its English name, when it differs

    def named(self, language: str) -> str:
        return self.en if language == "en" and self.en else self.name


@dataclass(frozen=True)
class OtherTopic:
    """A topic that is not ours (APN settings, voicemail, SSN), by the words people use for it."""

    name: str
    en: str
    words: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()  # only with one of these named or chosen (none: any provider, or none)
    also: tuple[str, ...] = ()  # a word of these must appear too (none: a word of `words` is enough)
    ours: tuple[str, ...] | None = None  # the words that leave it to the models (None: the file's ours_words)

    @property
    def narrow(self) -> bool:
        """Named only beside a provider, by two words together, or left to the models by its own words."""
        return bool(self.providers or self.also or self.ours is not None)

    def named(self, language: str) -> str:
        return self.en if language == "en" else self.name


@dataclass(frozen=True)
class Conversation:
    """conversation.yaml: small talk, the words of a follow-up, and what counts as a known word."""

    small_talk: dict[str, SmallTalk] = field(default_factory=dict)
    follow_up_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    follow_up_fillers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # beside them, never alone
    follow_up_answers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "I have tello": no provider yet
    # words that ask ("吗", "怎么", "how"): a reply to "which provider?" without one says which ("Mint 的 3个月套餐")
    question_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # words of the same again ("也", "same"): beside another provider, the last question unless another topic is named
    same_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # words of correcting oneself ("不是", "i meant"): another provider named with them is the last question again
    correction_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    known_word_zipf: float = 3.0
    provider_order: tuple[str, ...] = ()  # the "which provider?" buttons, first to last
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)  # what people write around a question
    # a life around a question (a visa, a move, a new job): learned around phrasings by the scope models only
    stories: dict[str, tuple[str, ...]] = field(default_factory=dict)


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
    product_words: tuple[str, ...] = ()  # "E卡", "US SIM card": taken out of a question like a provider's name
    bare_actions: tuple[str, ...] = ()  # actions a question may be alone ("充话费", "refill"): it asks how to do them
    learned_files: tuple[str, ...] = ()  # knowledge/learned/ files read (their phrasings are in the entries)
    learned_off_topic: dict[str, tuple[str, ...]] = field(default_factory=dict)  # of off_topic, those learned
    # (question, provider, topic) as other people write them: only the topic model learns them (topic_examples.yaml)
    topic_examples: tuple[tuple[str, str, str], ...] = ()
    # services that are not ours (other_services.yaml): named without a provider of ours, a question is declined,
    # unless it also speaks of a US number (us_number_words), or, for an app, of a phone bill (phone_words)
    other_services: tuple[OtherService, ...] = ()
    us_number_words: tuple[str, ...] = ()
    phone_words: tuple[str, ...] = ()
    keep_words: tuple[str, ...] = ()  # with a US number's words: keeping it alive (or topping it up), never declined
    account_words: tuple[str, ...] = ()  # with a phone line of ours named: signing in to it, never declined
    takeover_words: tuple[str, ...] = ()  # with any provider of ours named: its account taken over, never declined
    number_words: tuple[str, ...] = ()  # with takeover_words and no provider: a number taken over, never declined
    card_words: tuple[str, ...] = ()  # with paying_words and a phone line of ours named: paying it, never declined
    refused_words: tuple[str, ...] = ()  # with a phone line of ours named: paying it failed, never declined
    public_wifi_words: tuple[str, ...] = ()  # with a word of paying: paying on a public network, never declined
    paying_words: tuple[str, ...] = ()
    # with no provider of ours named or chosen and no phone_words: another app's paid tier, always declined
    membership_words: tuple[str, ...] = ()
    # topics that are not ours (other_services.yaml): a question with their words is declined, with or without
    # a provider of ours, unless it also has a word of money or of keeping a number (ours_words)
    other_topics: tuple[OtherTopic, ...] = ()
    ours_words: tuple[str, ...] = ()
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



# -- cross-file checks -------------------------------------------------------------------------------
# Every sentence the code shows, with the {placeholders} it fills in.
MESSAGES = {
    "decline": set(), "decline_support": {"provider", "url"}, "ask_provider": set(), "clarify": set(),
    "steps_heading": set(), "links_heading": set(), "checked": {"date"}, "from_general": {"provider"},
    "truncated": {"limit"}, "secret_warning": set(), "empty_question": set(), "walk_me": set(),
    "step_progress": {"n", "total"}, "step_done": set(), "step_back": set(), "step_failed": set(),
    "step_expect": {"text"}, "step_if_not": {"text"}, "payment_help_heading": set(), "final_check": set(),
    "walk_finished": set(), "walk_exit": set(), "related_heading": set(),
    "starters": set(), "welcome": set(), "provider_now": set(), "comment_prompt": set(),
    "meanwhile_general": set(), "more_choices": set(), "decline_suggest": set(), "old_source": {"date"},
    "not_understood": set(), "decline_other": {"service"}, "decline_topic": {"topic"},
}


def _placeholders(text: str) -> set[str] | None:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError:
        return None


def _message_errors(messages: dict[str, dict[str, str]]) -> list[str]:
    errors = [f"{MESSAGES_FILE}: {key}: text: missing (the app shows this message)"
              for key in sorted(MESSAGES.keys() - messages.keys())]
    for key, texts in messages.items():
        names = {lang: _placeholders(text) for lang, text in texts.items()}
        for lang, found in names.items():
            if found is None:
                errors.append(f"{MESSAGES_FILE}: {key}: text.{lang}: unbalanced {{ or }} "
                              "(write {{ and }} for a literal brace)")
            elif key in MESSAGES and found - MESSAGES[key]:
                allowed = ", ".join(f"{{{n}}}" for n in sorted(MESSAGES[key])) or "none"
                errors.append(f"{MESSAGES_FILE}: {key}: text.{lang}: unknown placeholder(s) "
                              f"{sorted(found - MESSAGES[key])} (allowed: {allowed})")
        if None not in names.values() and len({frozenset(n) for n in names.values()}) > 1:
            errors.append(f"{MESSAGES_FILE}: {key}: text: the languages use different {{placeholders}}; "
                          "keep them identical")
    return errors


def _cross_file_errors(files: dict[str, ProviderFile], complete: bool) -> list[str]:
    """What no single file can know: a provider defined twice, duplicate entry ids, and (when every file
    could be read, so that a missing id is really missing) related ids that exist."""
    errors, owner, seen = [], {}, {}
    for name, f in files.items():
        if f.provider.id in owner:
            errors.append(f"{name}: provider: provider.id: provider {f.provider.id!r} is already defined "
                          f"in {owner[f.provider.id]}")
        owner.setdefault(f.provider.id, name)
        for e in f.entries:
            if e.id in seen:
                errors.append(f"{name}: {e.id}: id: duplicate id (also in {seen[e.id]})")
            seen.setdefault(e.id, name)
    errors += [f"{name}: {e.id}: related: unknown entry id {rel!r}"
               for name, f in files.items() for e in f.entries for rel in e.related
               if complete and rel not in seen]
    return errors


# -- loading ---------------------------------------------------------------------------------------
def _digest(directory: Path, paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Learned:
    """What knowledge/learned/ adds: more phrasings per entry id, more questions to decline (per language)."""

    phrasings: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    off_topic: dict[str, tuple[str, ...]] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    attached: tuple[tuple[str, str], ...] = ()  # (file, entry id) of every attach, for error messages


def _learned(directory: Path, errors: list[str]) -> tuple[Learned, list[Path]]:
    """Read knowledge/learned/*.yaml with the same strictness as the rest; an unknown entry id is checked later."""
    paths = sorted((directory / LEARNED_DIR).glob("*.yaml"))
    phrasings: dict[str, dict[str, list[str]]] = {}
    off_topic: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
    attached: list[tuple[str, str]] = []
    for path in paths:
        name = f"{LEARNED_DIR}/{path.name}"
        found: list[str] = []
        doc, _, _ = load_yaml(path, found)
        errors += [f"{LEARNED_DIR}/{e}" for e in found]
        if found:
            continue
        f = validate(name, doc, LearnedFile, {}, errors)
        if f is None:
            continue
        questions = {lang: getattr(f.questions, lang) for lang in LANGUAGES}
        if not any(questions.values()):
            errors.append(f"{name}: -: questions: expected at least one question")
        elif f.action == "attach" and not f.entry:
            errors.append(f"{name}: -: entry: attach needs the id of the entry these are phrasings of")
        elif f.action == "out_of_scope" and f.entry:
            errors.append(f"{name}: -: entry: questions to decline belong to no entry; remove `entry`")
        elif f.action == "attach":
            attached.append((name, f.entry))
            for lang, texts in questions.items():
                phrasings.setdefault(f.entry, {}).setdefault(lang, []).extend(texts)
        else:
            for lang, texts in questions.items():
                off_topic[lang].extend(texts)
    learned = Learned({eid: {lang: tuple(qs) for lang, qs in by_lang.items()} for eid, by_lang in phrasings.items()},
                      {lang: tuple(qs) for lang, qs in off_topic.items() if qs},
                      tuple(f"{LEARNED_DIR}/{p.name}" for p in paths), tuple(attached))
    return learned, paths


def _learned_errors(learned: Learned, files: dict[str, ProviderFile], off_topic: dict[str, tuple[str, ...]],
                    complete: bool) -> list[str]:
    """Learned phrasings of entries that exist, and no question both answered and declined."""
    errors = []
    known = {e.id for f in files.values() for e in f.entries}
    if complete:
        errors += [f"{name}: -: entry: unknown entry id {eid!r} (learned phrasings attach to an entry that exists)"
                   for name, eid in learned.attached if eid not in known]
    declined = {lang: {q.casefold() for q in (*off_topic.get(lang, ()), *learned.off_topic.get(lang, ()))}
                for lang in LANGUAGES}
    for eid, by_lang in learned.phrasings.items():
        name = next(n for n, e in learned.attached if e == eid)
        for lang, texts in by_lang.items():
            errors += [f"{name}: {eid}: questions.{lang}: {q!r} is also a question to decline" for q in texts
                       if q.casefold() in declined[lang]]
    return errors


def _with_learned(texts: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """`texts` then the learned ones it does not already hold (ignoring case)."""
    have = {t.casefold() for t in texts}
    added = [t for t in dict.fromkeys(extra) if t.casefold() not in have]
    return texts + tuple(added)


def _entry(e: EntrySchema, provider: str, file: str, learned: Learned = Learned()) -> Entry:
    extra = learned.phrasings.get(e.id, {})
    questions = {lang: _with_learned(getattr(e.questions, lang), extra.get(lang, ())) for lang in LANGUAGES}
    steps = {lang: tuple(Step(s.do, s.expect, s.if_not) for s in getattr(e.steps, lang)) for lang in LANGUAGES} \
        if e.steps else {}
    return Entry(id=e.id, provider=provider, topic=e.topic, checked=e.checked, title=e.title.model_dump(),
                 questions=questions,
                 answer=e.answer.model_dump(), steps=steps,
                 links=tuple(Link(link.title, link.url) for link in e.links), sources=e.sources,
                 related=e.related, file=file,
                 learned={lang: questions[lang][len(getattr(e.questions, lang)):] for lang in LANGUAGES
                          if len(questions[lang]) > len(getattr(e.questions, lang))})


def _conversation(docs: dict[str, Any], known: list[str], errors: list[str]) -> Conversation:
    if CONVERSATION_FILE not in docs:
        return Conversation()
    f = validate(CONVERSATION_FILE, docs[CONVERSATION_FILE], ConversationFile, {"providers": known}, errors)
    if f is None:
        return Conversation()
    intents = {key: SmallTalk(key, {lang: getattr(s.questions, lang) for lang in LANGUAGES}, s.answer.model_dump())
               for key, s in f.small_talk.items()}
    return Conversation(intents, _by_language(f.follow_up_words), _by_language(f.follow_up_fillers),
                        _by_language(f.follow_up_answers), _by_language(f.question_words),
                        _by_language(f.same_words), _by_language(f.correction_words), f.known_word_zipf,
                        f.provider_order, _by_language(f.context), _by_language(f.stories))


def _by_language(words) -> dict[str, tuple[str, ...]]:
    """A per-language list of words as a dict by language; {} for none."""
    return {lang: getattr(words, lang) for lang in LANGUAGES} if words else {}


def _both(words) -> tuple[str, ...]:
    """A per-language list of words as one tuple, Chinese first; () for none."""
    return tuple(w for lang in LANGUAGES for w in getattr(words, lang)) if words else ()


def _topic_ours(topic, file) -> tuple[str, ...] | None:
    """The words that leave a topic not ours to the models: its own (`ours`), else the file's ours_words with its
    `more_ours`, else None (the file's ours_words, read as a plain topic)."""
    if topic.ours:
        return _both(topic.ours)
    return _both(file.ours_words) + _both(topic.more_ours) if topic.more_ours else None


def _vocabulary(docs: dict[str, Any], errors: list[str]
                ) -> tuple[tuple[TermGroup, ...], tuple[str, ...], tuple[str, ...]]:
    if VOCABULARY_FILE not in docs:
        return (), (), ()
    f = validate(VOCABULARY_FILE, docs[VOCABULARY_FILE], VocabularyFile, {}, errors)
    if f is None:
        return (), (), ()
    groups = tuple(TermGroup(g.id, g.canonical.model_dump(), {lang: getattr(g.variants, lang) for lang in LANGUAGES})
                   for g in f.vocabulary)
    return groups, _both(f.product_words), _both(f.bare_actions)


def _topic_examples(docs: dict[str, Any], known: list[str], topics: dict[str, Topic],
                    errors: list[str]) -> tuple[tuple[str, str, str], ...]:
    if TOPIC_EXAMPLES_FILE not in docs:
        return ()
    f = validate(TOPIC_EXAMPLES_FILE, docs[TOPIC_EXAMPLES_FILE], TopicExamplesFile,
                 {"providers": known, "topics": topics}, errors)
    return tuple((e.q, e.provider, e.topic) for e in f.examples) if f else ()


def _other_services(docs: dict[str, Any], files: dict[str, ProviderFile], known: list[str],
                    errors: list[str]) -> dict[str, tuple]:
    """other_services.yaml (the services, the words of a US number, the words of a phone bill, the topics that are
    not ours and the words that make a question ours after all), as KnowledgeBase fields; refusing a name that is
    also one of our providers' (it would decline our own), and a topic's provider that the catalog does not list
    (`known`; a provider without a guide yet may be listed)."""
    if OTHER_SERVICES_FILE not in docs:
        return {}
    f = validate(OTHER_SERVICES_FILE, docs[OTHER_SERVICES_FILE], OtherServicesFile, {}, errors)
    if f is None:
        return {}
    from retrieval.serving.providers import compact  # names compared as the finder reads them (中國 = 中国)

    ours = {compact(a): pf.provider.id for pf in files.values()
            for a in (*pf.provider.aliases, *pf.provider.name.model_dump().values())}
    seen: dict[str, str] = {}
    for s in f.other_services:
        for name in {s.name, *s.aliases, *([s.en] if s.en else [])}:
            key = compact(name)
            if key in ours:
                errors.append(f"{OTHER_SERVICES_FILE}: {s.name}: aliases: {name!r} names our provider {ours[key]!r}")
            elif seen.setdefault(key, s.name) != s.name:
                errors.append(f"{OTHER_SERVICES_FILE}: {s.name}: aliases: {name!r} is also {seen[key]!r}")
    errors += [f"{OTHER_SERVICES_FILE}: other_topics: {t.name}: providers: unknown provider {p!r}"
               for t in f.other_topics for p in t.providers if p not in known]

    return {"other_services": tuple(OtherService(s.name, s.kind, s.aliases, s.en) for s in f.other_services),
            "us_number_words": _both(f.us_number_words), "phone_words": _both(f.phone_words),
            "keep_words": _both(f.keep_words), "account_words": _both(f.account_words),
            "takeover_words": _both(f.takeover_words), "number_words": _both(f.number_words),
            "card_words": _both(f.card_words),
            "refused_words": _both(f.refused_words), "public_wifi_words": _both(f.public_wifi_words),
            "paying_words": _both(f.paying_words), "membership_words": _both(f.membership_words),
            "other_topics": tuple(OtherTopic(t.name, t.en, _both(t.words), t.providers, _both(t.also),
                                             _topic_ours(t, f)) for t in f.other_topics),
            "ours_words": _both(f.ours_words)}


def digest_of(directory: Path) -> str:
    """The digest `load_knowledge(directory)` would give, from the files' bytes alone (nothing parsed): cheap
    enough to tell on every page view whether the folder changed since it was loaded."""
    directory = Path(directory)
    paths = [p for p in sorted(directory.glob("*.yaml")) if p.name != MESSAGES_FILE]
    return _digest(directory, paths + sorted((directory / LEARNED_DIR).glob("*.yaml")))


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Read and validate every knowledge file (knowledge/learned/ too; knowledge/drafts/ never); raise
    KnowledgeError listing all problems."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.yaml"))
    names = {p.name for p in paths}
    errors = [f"{needed}: -: -: file missing in {directory}" for needed in (CATALOG_FILE, MESSAGES_FILE)
              if needed not in names]
    if errors:
        raise KnowledgeError(errors)
    loaded = {p.name: load_yaml(p, errors) for p in paths}
    docs = {name: doc for name, (doc, _, _) in loaded.items()}
    catalog = validate(CATALOG_FILE, docs[CATALOG_FILE], CatalogFile, {}, errors)
    known = list(catalog.providers) if catalog else []
    topics = {t.id: Topic(t.id, t.name.model_dump(), t.needs_provider) for t in catalog.topics} if catalog else {}
    messages_file = validate(MESSAGES_FILE, docs[MESSAGES_FILE], MessagesFile, {}, errors)
    messages = {k: v.model_dump() for k, v in messages_file.messages.items()} if messages_file else {}
    if messages_file:
        errors += _message_errors(messages)
    off_topic: dict[str, tuple[str, ...]] = {}
    if OUT_OF_SCOPE_FILE in docs:
        oos = validate(OUT_OF_SCOPE_FILE, docs[OUT_OF_SCOPE_FILE], OutOfScopeFile, {}, errors)
        off_topic = oos.out_of_scope.model_dump() if oos else {}
    conversation = _conversation(docs, known, errors)
    vocabulary, product_words, bare_actions = _vocabulary(docs, errors)
    topic_examples = _topic_examples(docs, known, topics, errors)
    files: dict[str, ProviderFile] = {}
    provider_files = [name for name in loaded if name not in SPECIAL_FILES]
    context = {"providers": known, "topics": topics}
    for name, (doc, node, text) in loaded.items():
        if name in SPECIAL_FILES:
            continue
        if doc is None:
            if not any(item.startswith(f"{name}: ") for item in errors):
                errors.append(f"{name}: -: -: the file is empty")
            continue
        errors += comment_errors(name, node, text)
        parsed = validate(name, doc, ProviderFile, context, errors)
        if parsed is not None:
            files[name] = parsed
    errors += _cross_file_errors(files, complete=len(files) == len(provider_files))
    others = _other_services(docs, files, known, errors)
    learned, learned_paths = _learned(directory, errors)
    errors += _learned_errors(learned, files, off_topic, complete=len(files) == len(provider_files))
    if errors:
        raise KnowledgeError(errors)
    written = off_topic
    off_topic = {lang: _with_learned(tuple(written.get(lang, ())), learned.off_topic.get(lang, ()))
                 for lang in LANGUAGES if written.get(lang) or learned.off_topic.get(lang)}
    learned_off_topic = {lang: texts[len(written.get(lang, ())):] for lang, texts in off_topic.items()
                         if len(texts) > len(written.get(lang, ()))}
    providers = {f.provider.id: Provider(f.provider.id, f.provider.name.model_dump(), f.provider.aliases,
                                         f.provider.support_url, f.provider.domains, f.provider.kind,
                                         f.provider.hints)
                 for f in files.values()}
    return KnowledgeBase(providers=dict(sorted(providers.items(), key=lambda kv: known.index(kv[0]))),
                         topics=topics, messages=messages, off_topic=off_topic,
                         entries=tuple(_entry(e, f.provider.id, name, learned)
                                       for name, f in files.items() for e in f.entries),
                         name_suffixes=catalog.name_suffixes, required=dict(catalog.required_topics),
                         conversation=conversation, vocabulary=vocabulary, product_words=product_words,
                         bare_actions=bare_actions,
                         provider_ids=tuple(known),
                         # the assistant's own sentences are not indexed: editing them rebuilds nothing
                         learned_files=learned.files, learned_off_topic=learned_off_topic,
                         topic_examples=topic_examples, **others,
                         digest=_digest(directory, [p for p in paths if p.name != MESSAGES_FILE] + learned_paths))
