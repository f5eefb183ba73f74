"""Question requests: the JSON object `ask --jsonl` reads on each line and POST /v1/ask reads as its body.

Both edges read a request the same way, so they accept and refuse the same things with the same words:

>>> from retrieval.knowledge import load_knowledge
>>> from retrieval.settings import ROOT
>>> kb = load_knowledge(ROOT / "knowledge")
>>> read_request('{"question": "GV怎么充值", "provider": null}'.encode(), kb, max_chars=500)
QuestionRequest(question='GV怎么充值', provider=None, topic=None, language=None, session_id=None)
>>> read_request(b'{"question": "hi", "provider": ["gv"]}', kb, max_chars=500)
Traceback (most recent call last):
...
retrieval.api.request.RequestError: "provider" must be a string or null, got an array
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.answer import Answer

__all__ = ["FIELDS", "REPORT_MAX_CHARS", "QuestionRequest", "ReportRequest", "RequestError", "answer", "bounded",
           "known_provider", "parse_report", "parse_request", "read_report", "read_request", "size_limit"]

FIELDS = ("question", "provider", "topic", "language", "session_id")
# The question is cut this far past the assistant's limit before anything scans it, so a card number
# straddling the limit is still seen whole by the masker; the assistant then cuts at its limit and says so.
SECRET_MARGIN = 64
MAX_SESSION_ID = 64
REPORT_MAX_CHARS = 2000  # as the page's "Report a mistake" box
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


class RequestError(ValueError):
    """A request refused before the assistant sees it; `status` is the HTTP status the API answers with
    (400 unreadable, 413 too large, 422 readable but wrong)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class QuestionRequest:
    question: str                   # already cut to the assistant's limit plus SECRET_MARGIN
    provider: str | None = None     # chosen earlier in the conversation
    topic: str | None = None        # the previous answer's topic, so "what about Mint?" keeps it
    language: str | None = None     # the user's choice; None: detected from the question
    session_id: str | None = None   # groups one conversation's questions in the store


@dataclass(frozen=True)
class ReportRequest:
    entry_id: str                   # the answer's `entry_id`: the entry that is wrong
    text: str                       # what is wrong, as typed (the store masks card numbers and codes)
    session_id: str | None = None


def size_limit(max_chars: int) -> int:
    """The most bytes read of one request: a question at the limit (plus the margin) written entirely as
    12-byte surrogate-pair escapes, and a kilobyte for the other fields; never under 16 KiB.

    >>> size_limit(500)
    16384
    >>> size_limit(2000)
    25792
    """
    return max(16 * 1024, 12 * (max_chars + SECRET_MARGIN) + 1024)


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value: str, limit: int = 40) -> str:
    """A user's value quoted for an error message: short, and with anything unprintable escaped."""
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


def decode_json(raw: bytes, limit: int) -> object:
    """The JSON value in `raw`, or RequestError for more than `limit` bytes, bytes that are not UTF-8, text
    that is not JSON, nesting deeper than Python's stack, or an integer too long to convert."""
    if len(raw) > limit:
        raise RequestError(f"too large: more than {limit} bytes", 413)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as Windows tools write, is not an error
    except UnicodeDecodeError as exc:
        raise RequestError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start}", 400) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"invalid JSON: {exc.msg} at column {exc.colno}", 400) from None
    except RecursionError:
        raise RequestError("invalid JSON: nested too deeply", 400) from None
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        raise RequestError("invalid JSON: a number with too many digits", 400) from None


def bounded(question: str, max_chars: int) -> str:
    """The part of a question anything will look at: the assistant's limit, plus SECRET_MARGIN."""
    return question[:max_chars + SECRET_MARGIN]


def known_provider(provider: str | None, kb: KnowledgeBase) -> str | None:
    """`provider` when it is None or one of the knowledge base's ids, else RequestError."""
    if provider is not None and provider not in kb.providers:
        raise RequestError(f"unknown provider {_shown(provider)}: use one of {', '.join(kb.providers)}")
    return provider


def _optional_text(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestError(f'"{name}" must be a string or null, got {_json_type(value)}')
    return value


def _valid_unicode(text: str, name: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # "\ud800" is valid JSON but no character
        raise RequestError(f'"{name}" is not valid Unicode: a lone surrogate at character {exc.start}') from None
    return text


def parse_request(data: object, kb: KnowledgeBase, max_chars: int) -> QuestionRequest:
    """Check a decoded request against the knowledge base; fields other than FIELDS are ignored."""
    if not isinstance(data, dict):
        raise RequestError(f'expected an object like {{"question": "...", "provider": null}}, got {_json_type(data)}')
    if "question" not in data:
        raise RequestError('missing "question"')
    question = data["question"]
    if not isinstance(question, str):
        raise RequestError(f'"question" must be a string, got {_json_type(question)}')
    question = _valid_unicode(bounded(question, max_chars), "question")
    provider = known_provider(_optional_text(data, "provider"), kb)
    topic = _optional_text(data, "topic")
    if topic is not None and topic not in kb.topics:
        raise RequestError(f"unknown topic {_shown(topic)}: use one of {', '.join(kb.topics)}")
    language = _optional_text(data, "language")
    if language is not None and language not in LANGUAGES:
        raise RequestError(f"unknown language {_shown(language)}: use one of {', '.join(LANGUAGES)}")
    return QuestionRequest(question, provider, topic, language, _session_id(data))


def _session_id(data: dict) -> str | None:
    session_id = _optional_text(data, "session_id")
    if session_id is not None and not 1 <= len(session_id) <= MAX_SESSION_ID:
        raise RequestError(f'"session_id" must be 1 to {MAX_SESSION_ID} characters, got {len(session_id)}')
    if session_id is not None:
        _valid_unicode(session_id, "session_id")
    return session_id


def read_request(raw: bytes, kb: KnowledgeBase, max_chars: int) -> QuestionRequest:
    """decode_json, then parse_request: what both edges do with the bytes they receive."""
    return parse_request(decode_json(raw, size_limit(max_chars)), kb, max_chars)


def parse_report(data: object, kb: KnowledgeBase) -> ReportRequest:
    """Check a decoded mistake report: an entry the knowledge base has, and a few words (at most
    REPORT_MAX_CHARS) saying what is wrong with it.

    >>> from retrieval.knowledge import load_knowledge
    >>> from retrieval.settings import ROOT
    >>> kb = load_knowledge(ROOT / "knowledge")
    >>> parse_report({"entry_id": "gv-topup-steps", "text": "the menu is called Billing now"}, kb)
    ReportRequest(entry_id='gv-topup-steps', text='the menu is called Billing now', session_id=None)
    >>> parse_report({"entry_id": "gv-topup-steps", "text": "   "}, kb)
    Traceback (most recent call last):
    ...
    retrieval.api.request.RequestError: "text" needs a few words saying what is wrong
    """
    if not isinstance(data, dict):
        raise RequestError(f'expected an object like {{"entry_id": "...", "text": "..."}}, got {_json_type(data)}')
    for name in ("entry_id", "text"):
        if name not in data:
            raise RequestError(f'missing "{name}"')
        if not isinstance(data[name], str):
            raise RequestError(f'"{name}" must be a string, got {_json_type(data[name])}')
    entry_id, text = data["entry_id"], data["text"]
    if entry_id not in kb.by_id:
        raise RequestError(f"unknown entry {_shown(entry_id)}: send the answer's entry_id")
    if not text.strip():
        raise RequestError('"text" needs a few words saying what is wrong')
    if len(text) > REPORT_MAX_CHARS:
        raise RequestError(f'"text" must be at most {REPORT_MAX_CHARS} characters, got {len(text)}')
    return ReportRequest(entry_id, _valid_unicode(text, "text"), _session_id(data))


def read_report(raw: bytes, kb: KnowledgeBase) -> ReportRequest:
    """decode_json, then parse_report."""
    return parse_report(decode_json(raw, size_limit(REPORT_MAX_CHARS)), kb)


def answer(assistant, request: QuestionRequest) -> Answer:
    """Ask the assistant a checked request."""
    return assistant.ask(request.question, provider=request.provider, language=request.language,
                         topic=request.topic)
