"""The knowledge files' schema: constants, the source grammar, pydantic models that forbid unknown keys,
YAML reading that keeps the node tree (to find comments YAML would swallow), and every error as
'file: entry: field: message'. retrieval.knowledge turns what passes into records."""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic import field_validator as check
from pydantic_core import PydanticCustomError

LANGUAGES = ("zh", "en")
CATALOG_FILE = "catalog.yaml"
MESSAGES_FILE = "messages.yaml"
OUT_OF_SCOPE_FILE = "out_of_scope.yaml"
CONVERSATION_FILE = "conversation.yaml"
VOCABULARY_FILE = "vocabulary.yaml"
TOPIC_EXAMPLES_FILE = "topic_examples.yaml"
OTHER_SERVICES_FILE = "other_services.yaml"
SPECIAL_FILES = (CATALOG_FILE, MESSAGES_FILE, OUT_OF_SCOPE_FILE, CONVERSATION_FILE, VOCABULARY_FILE,
                 TOPIC_EXAMPLES_FILE, OTHER_SERVICES_FILE)
OTHER_SERVICE_KINDS = ("carrier_outside_us", "app")
# knowledge/learned/*.yaml: real users' questions the operator filed from the inbox (retrieval/learn), read with the
# rest. knowledge/drafts/: entries the inbox asked for, for a person to write and source; never read.
LEARNED_DIR = "learned"
DRAFTS_DIR = "drafts"
LEARNED_ACTIONS = ("attach", "out_of_scope")
PROVIDER_KINDS = ("general", "virtual_number", "retired_voip", "business_phone", "carrier_prepaid", "mvno_prepaid")
PROVIDER_STATUSES = ("active", "retired")
ENTRY_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
URL = re.compile(r"^https://[^\s]+$")
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
SOURCE_KINDS = ("official", "official community", "reseller", "third-party")
# "<url> (<kind>, <date>)": the date is the one the cited page shows, never the day someone read it.
SOURCE = re.compile(r"^(?P<url>https?://\S+) \((?P<kind>[a-z -]+), (?P<date>\d{4}(?:-\d{2}){0,2}|undated)\)$")
SOURCE_GRAMMAR = (f"expected '<url> (<kind>, <date>)' with kind one of {', '.join(SOURCE_KINDS)} "
                  "and date YYYY-MM-DD, YYYY-MM, YYYY or undated (the date the page shows)")


# -- the source grammar ------------------------------------------------------------------------------
def latest_day(page_date: str) -> dt.date | None:
    """The last day a page's date can mean ('2024' may be 31 December 2024); None for 'undated' or ''.
    Raises ValueError for a date that does not exist (2026-13, 2026-02-30)."""
    if page_date in ("undated", ""):
        return None
    parts = [int(p) for p in page_date.split("-")]
    if len(parts) == 1:
        return dt.date(parts[0], 12, 31)
    if len(parts) == 2:
        dt.date(parts[0], parts[1], 1)
        return dt.date(parts[0] + parts[1] // 12, parts[1] % 12 + 1, 1) - dt.timedelta(days=1)
    return dt.date(*parts)


def older_than_years(page_date: str, years: int, today: dt.date) -> bool:
    """Whether a page dated `page_date` is certainly more than `years` years old on `today`."""
    day = latest_day(page_date)
    if day is None:
        return False
    try:
        limit = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        limit = today.replace(year=today.year - years, day=28)
    return day < limit


@dataclass(frozen=True)
class Source:
    """One cited page: `date` is what the page shows (YYYY-MM-DD, YYYY-MM, YYYY) or 'undated'."""

    url: str
    kind: str
    date: str

    @property
    def latest_day(self) -> dt.date | None:
        return latest_day(self.date)


def parse_source(text: str) -> Source | None:
    """A source string read by the grammar; None when it does not follow it."""
    m = SOURCE.match(text)
    if not m or m["kind"] not in SOURCE_KINDS:
        return None
    source = Source(m["url"], m["kind"], m["date"])
    try:
        source.latest_day  # noqa: B018  (2026-13 or 2026-02-30 is not a date)
    except ValueError:
        return None
    return source



# -- the schema of the files ------------------------------------------------------------------------
def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)  # without a context, pydantic leaves {braces} in the text alone


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
        raise _fail("text", f"expected text, got {type(value).__name__}")
    if value is None or not str(value).strip():
        raise _fail("text", "empty text")
    return str(value).strip()


def _non_empty(message: str):
    def needs_items(items: tuple) -> tuple:
        if not items:
            raise _fail("empty", message)
        return items
    return needs_items


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise _fail("date", f"expected a date YYYY-MM-DD, got {value!r}")
    return value


def _https(value: str) -> str:
    if not URL.match(value):
        raise _fail("url", f"not an https URL: {value!r}")
    return value


def _source(value: str) -> str:
    if parse_source(value) is None:
        raise _fail("source", f"{value!r}: {SOURCE_GRAMMAR}")
    return value


def _domain(value: str) -> str:
    if not DOMAIN.match(value):
        raise _fail("domain", f"{value!r} is not a bare domain like tello.com")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Texts = Annotated[tuple[Text, ...], AfterValidator(_non_empty("expected a non-empty list"))]
HttpsUrl = Annotated[Text, AfterValidator(_https)]
T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PerLanguage(Schema, Generic[T]):
    """A value given once per language: {zh: ..., en: ...}."""

    zh: T
    en: T


class StepSchema(Schema):
    do: Text
    expect: Text = ""
    if_not: Text = ""


def _step(value: Any) -> Any:
    return {"do": value} if isinstance(value, str) else value  # a bare string is a step with only `do`


Steps = Annotated[tuple[Annotated[StepSchema, BeforeValidator(_step)], ...],
                  AfterValidator(_non_empty("empty step list"))]


class LinkSchema(Schema):
    title: Text
    url: HttpsUrl


def _known_topic(value: str, info: ValidationInfo) -> str:
    if value not in (info.context or {}).get("topics", ()):
        raise _fail("topic", f"unknown topic {value!r}")
    return value


TopicId = Annotated[Text, AfterValidator(_known_topic)]  # a topic id of catalog.yaml (passed in the context)


class EntrySchema(Schema):
    id: str
    topic: Annotated[str, AfterValidator(_known_topic)]
    checked: Annotated[dt.date, BeforeValidator(_date)]
    title: PerLanguage[Text]
    questions: PerLanguage[Texts]
    answer: PerLanguage[Text]
    steps: PerLanguage[Steps] | None = None
    links: Annotated[tuple[LinkSchema, ...], AfterValidator(_non_empty("expected at least one official link"))]
    sources: Annotated[tuple[Annotated[Text, AfterValidator(_source)], ...],
                       AfterValidator(_non_empty("expected at least one source"))]
    related: Texts = ()

    @check("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ENTRY_ID.match(value):
            raise _fail("id", "use lowercase letters, digits and single hyphens")
        return value

    @check("steps")
    @classmethod
    def _same_steps(cls, value: PerLanguage | None) -> PerLanguage | None:
        if value is not None and len(value.zh) != len(value.en):
            raise _fail("steps", "the languages have different numbers of steps")
        return value


class ProviderSchema(Schema):
    id: Text
    name: PerLanguage[Text]
    # kind and status describe the provider to whoever edits the catalog; the assistant reads the kind only to
    # know whose account is the phone line itself (account_words in other_services.yaml).
    kind: Literal[PROVIDER_KINDS]  # type: ignore[valid-type]
    status: Literal[PROVIDER_STATUSES]  # type: ignore[valid-type]
    aliases: tuple[Text, ...] = ()
    # words that say which provider a question is about without being its name ("voice credit", "Voice app"): they
    # choose the provider and stay in the question, so the phrasings that use them are read as before
    hints: tuple[Text, ...] = ()
    support_url: HttpsUrl
    domains: tuple[Annotated[Text, AfterValidator(_domain)], ...] = ()

    @check("id")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("providers", ())
        if value not in known:
            raise _fail("provider", f"unknown provider {value!r} (known: {', '.join(known)})")
        return value


class ProviderFile(Schema):
    provider: ProviderSchema
    entries: Annotated[tuple[EntrySchema, ...], AfterValidator(_non_empty("expected a non-empty list of entries"))]


class TopicSchema(Schema):
    id: Text
    name: PerLanguage[Text]
    needs_provider: Annotated[bool, BeforeValidator(lambda v: v if isinstance(v, bool) else _fail_bool())]


def _fail_bool() -> bool:
    raise _fail("bool", "expected true or false")


class CatalogFile(Schema):
    providers: Texts
    topics: tuple[TopicSchema, ...]
    required_topics: dict[str, Texts] = {}
    name_suffixes: Texts = ()

    @check("required_topics")
    @classmethod
    def _required(cls, value: dict[str, tuple[str, ...]], info: ValidationInfo) -> dict[str, tuple[str, ...]]:
        providers = set(info.data.get("providers", ()))
        topics = {t.id for t in info.data.get("topics", ())}
        for key, names in value.items():
            if key != "every_provider" and key not in providers:
                raise _fail("required", f"{key!r} is neither every_provider nor a provider id")
            for name in names:
                if name not in topics:
                    raise _fail("required", f"required_topics.{key}: unknown topic {name!r}")
        return value


class MessagesFile(Schema):
    messages: dict[str, PerLanguage[Text]]


class OutOfScopeFile(Schema):
    out_of_scope: PerLanguage[Texts]


class LearnedQuestions(Schema):
    zh: tuple[Text, ...] = ()
    en: tuple[Text, ...] = ()


class LearnedFile(Schema):
    """One action from the inbox: its questions become more phrasings of an existing entry (`attach`, with
    `entry`) or questions to decline (`out_of_scope`). Questions only: an answer or a fact has no place here."""

    action: Literal[LEARNED_ACTIONS]  # type: ignore[valid-type]
    by: Text                          # who filed them
    at: Text                          # when (UTC, ISO 8601)
    group: Text                       # the inbox group they came from
    entry: Text | None = None
    questions: LearnedQuestions


class SmallTalkSchema(Schema):
    questions: PerLanguage[Texts]
    answer: PerLanguage[Text]


class ConversationFile(Schema):
    small_talk: dict[str, SmallTalkSchema]
    follow_up_words: PerLanguage[Texts]
    follow_up_fillers: PerLanguage[Texts] | None = None
    follow_up_answers: PerLanguage[Texts] | None = None
    question_words: PerLanguage[Texts] | None = None
    same_words: PerLanguage[Texts] | None = None
    correction_words: PerLanguage[Texts] | None = None
    known_word_zipf: float
    provider_order: tuple[Text, ...] = ()
    context: PerLanguage[Texts] | None = None
    stories: PerLanguage[Texts] | None = None

    @check("known_word_zipf")
    @classmethod
    def _zipf(cls, value: float) -> float:
        if not 0 <= value <= 8:
            raise _fail("zipf", f"expected a number from 0 to 8, got {value!r}")
        return value

    @check("provider_order")
    @classmethod
    def _providers(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = (info.context or {}).get("providers", ())
        for pid in value:
            if pid not in known or pid == "general":
                raise _fail("provider", f"{pid!r} is not a provider id")
        return value


class TopicExampleSchema(Schema):
    q: Text
    topic: TopicId
    provider: Text = "general"

    @check("provider")
    @classmethod
    def _provider(cls, value: str, info: ValidationInfo) -> str:
        if value not in (info.context or {}).get("providers", ()):
            raise _fail("provider", f"{value!r} is not a provider id")
        return value


class TopicExamplesFile(Schema):
    """Questions as other people write them, labelled with their topic only: the topic model learns them
    beside the entries' phrasings. Never shown, never matched as phrasings."""

    examples: Annotated[tuple[TopicExampleSchema, ...], AfterValidator(_non_empty("expected a non-empty list"))]


class OtherServiceSchema(Schema):
    name: Text                     # as the decline names it
    kind: Literal[OTHER_SERVICE_KINDS]  # type: ignore[valid-type]
    en: Text | None = None         # its English name, for an English answer, when it differs ("China Mobile")
    aliases: tuple[Text, ...] = ()  # other ways people write it (the name itself is always matched)


class OtherTopicSchema(Schema):
    name: Text                     # as the decline names it ("APN 和上网设置")
    en: Text                       # in an English answer ("APN and mobile data settings")
    words: PerLanguage[Texts]      # the words that name it ("apn", "接入点")
    # Optional, for a topic that a word alone does not name: only with one of these providers named or chosen...
    providers: tuple[Text, ...] = ()
    # ...only with one of these words too ("收不到" names it only beside "验证码")...
    also: PerLanguage[Texts] | None = None
    # ...and left to the models by these words instead of ours_words (which hold "验证码" and "注册" themselves)
    ours: PerLanguage[Texts] | None = None
    # ...or by ours_words and these words too ("客服", "a human": a carrier's phone menu is met on the way to support)
    more_ours: PerLanguage[Texts] | None = None


class OtherServicesFile(Schema):
    """Services that are not ours, by name: a question that names one and none of our providers is declined
    with a note that names it."""

    checked: Annotated[dt.date, BeforeValidator(_date)]
    other_services: Annotated[tuple[OtherServiceSchema, ...], AfterValidator(_non_empty("expected a non-empty list"))]
    # words that say a question is about a US number after all ("美国号码", "my US number"): with one of them,
    # a service named in passing ("回国用中国移动，美国号码怎么保号") decides nothing; the models do
    us_number_words: PerLanguage[Texts] | None = None
    # words of a phone number or its bill ("话费", "my phone bill"): with one of them, an app named in passing
    # ("卡在 Netflix 上能用，充话费就被拒") decides nothing either; a carrier still does ("中国移动怎么交话费")
    phone_words: PerLanguage[Texts] | None = None
    # words of keeping a number alive ("保号", "keep", "充值", "top up"): beside a US number's words, a question is
    # ours, never declined
    keep_words: PerLanguage[Texts] | None = None
    # words of signing in to an account or of one taken over ("登不上", "forgot my password", "hijacked"): with a
    # phone line of ours named (a carrier or a business line), a question is ours, never declined
    account_words: PerLanguage[Texts] | None = None
    # words of an account or number taken over ("被盗", "hijacked"): with any provider of ours named or chosen,
    # Google Voice too, a question is ours, never declined
    takeover_words: PerLanguage[Texts] | None = None
    # words of a phone number itself ("号码", "my number"): beside a word of takeover_words and with no provider
    # named, a number taken over, ours, never declined
    number_words: PerLanguage[Texts] | None = None
    # words of a card ("信用卡", "debit card"): with a word of paying and a phone line of ours named, paying that
    # line by card, ours, never declined
    card_words: PerLanguage[Texts] | None = None
    # words of a payment refused ("被拒", "declined", "支付失败"): with a phone line of ours named, the line's own
    # payment failed, a question that is ours, never declined
    refused_words: PerLanguage[Texts] | None = None
    # words of a public network ("公共wifi", "airport wifi") and of paying ("充话费", "pay"): both together, a question
    # asks whether paying there is safe, ours (the safety topic), never declined
    public_wifi_words: PerLanguage[Texts] | None = None
    paying_words: PerLanguage[Texts] | None = None
    # words of another app's paid tier when its name is not given ("会员", "premium", "api key"): with no provider of
    # ours named or chosen and no word of a phone number or its bill, a question is not ours, always declined (with
    # the nearest entries offered when it comes near, as any decline)
    membership_words: PerLanguage[Texts] | None = None
    # topics that are not ours, by their words ("APN", "语音信箱", "SSN"): a question that names one is declined
    # by the topic's name, even with a provider of ours named ("how to set up voicemail on h2o")...
    other_topics: tuple[OtherTopicSchema, ...] = ()
    # ...unless it also has one of these words of money or of keeping a number ("充值", "refund", "保号"):
    # then the models judge it ("Tello 漫游怎么收费")
    ours_words: PerLanguage[Texts] | None = None


class TermGroupSchema(Schema):
    id: Text
    canonical: PerLanguage[Text]
    variants: PerLanguage[Texts]


class VocabularyFile(Schema):
    vocabulary: tuple[TermGroupSchema, ...]
    product_words: PerLanguage[tuple[Text, ...]] | None = None
    # a question that is nothing but one of these ("Tello 充话费", "mint refill") asks how to do it
    bare_actions: PerLanguage[tuple[Text, ...]] | None = None

    @check("vocabulary")
    @classmethod
    def _one_group_each(cls, value: tuple[TermGroupSchema, ...]) -> tuple[TermGroupSchema, ...]:
        owner: dict[tuple[str, str], str] = {}
        for group in value:
            for lang in LANGUAGES:
                for variant in getattr(group.variants, lang):
                    key = (lang, variant.lower())
                    if owner.setdefault(key, group.id) != group.id:
                        raise _fail("variant", f"{variant!r} is a variant in both {owner[key]!r} and {group.id!r}")
        return value


# -- turning pydantic's errors into "file: entry: field: message" ---------------------------------------
PLAIN_MESSAGES = {
    "missing": "missing",
    "literal_error": "{input!r} is not one of {expected}",
    "dict_type": "expected a mapping, got {type}",
    "model_type": "expected a mapping, got {type}",
    "model_attributes_type": "expected a mapping, got {type}",
    "tuple_type": "expected a list, got {type}",
    "list_type": "expected a list, got {type}",
    "string_type": "expected text, got {type}",
}


def _unwrap(tp: Any) -> Any:
    """X from Annotated[X, ...] and from X | None."""
    while typing.get_origin(tp) in (Annotated, typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _fields_of(model: Any, path: tuple) -> list[str]:
    """The keys allowed where `path` leads inside `model`, for an "unknown key" message."""
    tp = model
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return []
            tp = tp.model_fields[part].annotation
        elif typing.get_args(tp):  # tuple[X, ...] or dict[str, X]: the item type
            tp = typing.get_args(tp)[-1] if typing.get_origin(tp) is dict else typing.get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    return sorted(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _message(error: dict, model: type[BaseModel]) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        allowed = _fields_of(model, loc[:-1])
        return f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing" and loc and loc[-1] in LANGUAGES:
        return "missing language"
    if kind in PLAIN_MESSAGES:
        ctx = error.get("ctx") or {}
        return PLAIN_MESSAGES[kind].format(input=error.get("input"), type=type(error.get("input")).__name__,
                                           expected=ctx.get("expected", ""))
    return error["msg"]


def _path(parts: tuple) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "-"


def _locate(name: str, doc: Any, loc: tuple) -> tuple[str, str]:
    """(entry, field) of an error's location in a file's document."""
    if name == MESSAGES_FILE and len(loc) >= 2 and loc[0] == "messages":
        return str(loc[1]), _path(("text", *loc[2:]))
    if loc[:1] == ("provider",):
        return "provider", _path(loc)
    if loc[:1] == ("entries",) and len(loc) >= 2 and isinstance(loc[1], int):
        entries = doc.get("entries") if isinstance(doc, dict) else None
        raw = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        entry = raw["id"] if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"entries[{loc[1]}]"
        return entry, _path(loc[2:])
    return "-", _path(loc)


def validate(name: str, doc: Any, model: type[BaseModel], context: dict, errors: list[str]) -> Any:
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            entry, fld = _locate(name, doc, tuple(str(p) if not isinstance(p, int) else p for p in error["loc"]))
            errors.append(f"{name}: {entry}: {fld}: {_message(error, model)}")
    return None


# -- YAML, with the node tree kept to find comments --------------------------------------------------
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


def load_yaml(path: Path, errors: list[str]) -> tuple[Any, yaml.Node | None, str]:
    """The document, its node tree and its text; (None, None, "") with an error when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
        loader = _SafeLoader(text)
        try:
            node = loader.get_single_node()
            return (loader.construct_document(node) if node is not None else None), node, text
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        errors.append(f"{path.name}: -: -: not UTF-8 text ({exc.reason})")
    except RecursionError:
        errors.append(f"{path.name}: -: -: invalid YAML: nested too deeply to read")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        errors.append(f"{path.name}: -: -: invalid YAML at {where}: {problem}")
    return None, None, ""


def _scalars(root: yaml.Node) -> list[tuple[yaml.ScalarNode, tuple]]:
    """Every scalar under `root` (keys too), with the path of the value it belongs to; each node once,
    since aliases can share nodes or even loop."""
    found: list[tuple[yaml.ScalarNode, tuple]] = []
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            found.append((node, path))
        elif isinstance(node, yaml.SequenceNode):
            todo += [(child, (*path, i)) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            for key, child in node.value:
                inner = (*path, key.value if isinstance(key, yaml.ScalarNode) else "?")
                todo += [(key, inner), (child, inner)]
    return found


def comment_errors(name: str, node: yaml.Node | None, text: str) -> list[str]:
    """A '#' comment inside an entry: YAML silently drops it, and after a plain value it cuts the text
    ('拨 #225# 查余额' reads as '拨'). Separator comments between entries are fine."""
    if not isinstance(node, yaml.MappingNode):
        return []
    entries = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "entries"), None)
    if not isinstance(entries, yaml.SequenceNode):
        return []
    errors = []
    for entry in entries.value:
        scalars = sorted(_scalars(entry), key=lambda s: s[0].start_mark.index)
        if not isinstance(entry, yaml.MappingNode) or not scalars:
            continue
        eid = next((v.value for k, v in entry.value if isinstance(k, yaml.ScalarNode)
                    and k.value == "id" and isinstance(v, yaml.ScalarNode)), "?")
        start, last = entry.start_mark.index, max(s.end_mark.index for s, _ in scalars)
        end = text.find("\n", last) if text.find("\n", last) >= 0 else len(text)
        spans = [(s.start_mark.index, s.end_mark.index) for s, _ in scalars]
        for m in re.finditer(r"(?:(?<=\s)|^)#", text[start:end], flags=re.M):
            at = start + m.start()
            if any(a <= at < b for a, b in spans):
                continue
            before = [(s, p) for s, p in scalars if s.end_mark.index <= at]
            scalar, path = before[-1] if before else (scalars[0][0], ())
            same_line = "\n" not in text[scalar.end_mark.index:at]
            fld = _path(tuple(path)) if path else "-"
            if same_line and scalar.style is None:
                why = (f"YAML read {scalar.value!r} and dropped the rest of the line from ' #' as a comment; "
                       "quote the value")
            else:
                why = "a YAML comment inside an entry is dropped silently; remove it or put the words in a value"
            errors.append(f"{name}: {eid}: {fld}: {why} (line {text.count(chr(10), 0, at) + 1})")
    return errors
