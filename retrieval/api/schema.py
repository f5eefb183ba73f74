"""The API's documented shapes, for its OpenAPI page. Documentation only: answers are written by
`Answer.to_json` and requests read by `retrieval.api.request`; tests hold the three together."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from retrieval.api.request import MAX_SESSION_ID, REPORT_MAX_CHARS
from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.answer import Kind

__all__ = ["ERRORS", "REPORT_ERRORS", "AskResponse", "Choice", "ErrorResponse", "Health", "Hit", "Provider",
           "ProviderList", "ReportResponse", "report_schema", "request_schema"]


class Hit(BaseModel):
    """A knowledge-base entry the question came close to, best first (by `score`, the ranking's own)."""

    chunk_id: str
    entry_id: str
    provider: str
    topic: str
    score: float
    similarity: float  # the embedding's cosine with the entry's nearest phrasing
    title: str
    text: str


class Choice(BaseModel):
    """A button: ask `question` again with `provider` set, or open entry `entry_id` directly."""

    label: str
    question: str
    provider: str | None
    entry_id: str | None


class AskResponse(BaseModel):
    """The object `python -m retrieval ask --jsonl` writes for the same request."""

    question: str
    language: Literal[LANGUAGES]
    provider: str | None
    answered: bool
    hits: list[Hit]
    answer: str
    kind: Literal[tuple(kind.value for kind in Kind)]
    topic: str | None
    entry_id: str | None
    choices: list[Choice]
    notices: list[str]


class ErrorResponse(BaseModel):
    error: str


class ReportResponse(BaseModel):
    """A mistake report kept for the operator's inbox: written (`saved`), or held in memory until the
    database is back (`queued`); `text` is what was kept, card numbers and codes masked."""

    status: Literal["saved", "queued"]
    entry_id: str
    text: str


class Provider(BaseModel):
    id: str
    name: dict[str, str]
    support_url: str


class ProviderList(BaseModel):
    providers: list[Provider]


class Health(BaseModel):
    status: Literal["ok"]
    entries: int
    store: Literal["ok", "unavailable"]


ERRORS = {
    400: {"model": ErrorResponse, "description": "Not UTF-8, not JSON, nested too deeply, or a number too long"},
    413: {"model": ErrorResponse, "description": "A body larger than the limit (16 KiB by default)"},
    422: {"model": ErrorResponse, "description": "Not an object, no question, a wrong type, an unknown provider, "
                                                 "topic or language, or text that is not valid Unicode"},
}


# A character Python's str.strip() keeps (what the server and the store call a word), spelt out because
# JSON Schema's \S (ECMAScript's) and Python's disagree on U+001C-U+001F, U+0085 and U+FEFF.
NOT_BLANK = ("[^\t\n\u000b\u000c\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f"
             "\u205f\u3000]")

REPORT_ERRORS = {
    400: ERRORS[400],
    413: {"model": ErrorResponse, "description": "A body larger than the limit"},
    422: {"model": ErrorResponse, "description": "Not an object, no entry_id or text, a wrong type, an unknown "
                                                 "entry, text that is blank, too long or not valid Unicode"},
    503: {"model": ErrorResponse, "description": "This server keeps no reports (it runs without a store)"},
}


def report_schema(kb: KnowledgeBase) -> dict:
    """POST /v1/report's body as JSON Schema, with the entry ids of the loaded knowledge base."""
    return {
        "type": "object",
        "required": ["entry_id", "text"],
        "properties": {
            "entry_id": {"type": "string", "enum": [e.id for e in kb.entries],
                         "description": "The answer's `entry_id`: the entry that is wrong."},
            "text": {"type": "string", "minLength": 1, "maxLength": REPORT_MAX_CHARS, "pattern": NOT_BLANK,
                     "description": "What is wrong: a number, an outdated step, a dead link..."},
            "session_id": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID},
                                     {"type": "null"}], "default": None,
                           "description": "The session_id the question was asked with, if any."},
        },
        "example": {"entry_id": "gv-topup-steps", "text": "The menu is called Billing now"},
    }


def request_schema(kb: KnowledgeBase, max_chars: int) -> dict:
    """POST /v1/ask's body as JSON Schema, with the provider and topic ids of the loaded knowledge base."""
    def optional(schema: dict, description: str) -> dict:
        return {"anyOf": [schema, {"type": "null"}], "default": None, "description": description}

    return {
        "type": "object",
        "required": ["question"],
        "properties": {
            "question": {"type": "string", "description": (
                f"What the user asked. Longer than {max_chars} characters: cut, and the answer's `notices` "
                "say so.")},
            "provider": optional({"type": "string", "enum": list(kb.providers)},
                                 "The provider chosen earlier in the conversation (the previous answer's "
                                 "`provider`); GET /v1/providers lists them."),
            "topic": optional({"type": "string", "enum": list(kb.topics)},
                              "The previous answer's `topic` (after small talk, the one before), so a follow-up "
                              "such as \"what about Mint?\" keeps it."),
            "language": optional({"type": "string", "enum": list(LANGUAGES)},
                                 "The language to answer in; absent or null: the question's own."),
            "session_id": optional({"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID},
                                   "Groups one conversation's questions in the operator's statistics."),
        },
        "example": {"question": "GV怎么充值？", "provider": None},
    }
