"""Live: the assistant a server process answers from, switched whole to a new one when an action is saved.

The pages take `serving(load)` on every run: the assistant switched in last, else the one `load` gives (loaded
once, shared by the chat and the insights page). Saving an action writes its file and records who and when;
then, in a background thread, the index the action was measured with is saved (or one is built) and the
assistant switched: a question asked meanwhile is answered by the previous assistant, whole, never by a half-built
one. Measuring and saving run one at a time, in the order asked: the machine's cores are the chat's too.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.build.index import load_or_build, save_index
from retrieval.knowledge import KnowledgeBase, digest_of, load_knowledge
from retrieval.learn.effect import Effect, Evaluator, SeededEmbedder, measure, serving_copy, warm
from retrieval.learn.files import Action, save
from retrieval.learn.inbox import Group
from retrieval.measure.evaluate import DEV_SETS, TEST_SET
from retrieval.serving.assistant import Assistant
from retrieval.settings import Settings

__all__ = ["Job", "Live", "StaleEffect", "file_action", "live", "serving"]

log = logging.getLogger(__name__)
KEEP_JOBS = 50


class StaleEffect(Exception):
    """The knowledge changed after an action was measured: measure it again before saving it."""


@dataclass
class Job:
    """Work running in the background: what it says as it goes, then its result or its error."""

    id: str
    what: str
    started: float = field(default_factory=time.time)
    status: str = "waiting"  # waiting | running | done | failed
    messages: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    finished: float | None = None

    def say(self, message: str) -> None:
        self.messages.append(message)

    @property
    def over(self) -> bool:
        return self.status in ("done", "failed")


def file_action(action: Action, knowledge_dir: Path, store, interactions: Sequence[int] = (),
                effect: dict | None = None, kb: KnowledgeBase | None = None) -> tuple[Path, KnowledgeBase, int]:
    """Write the action's file (checked by the strict loader) and record it with who and when; the group's
    questions leave the inbox. If the record cannot be written the file is removed again. Returns (file, the
    knowledge as it now loads, the action's id)."""
    path, loaded = save(action, knowledge_dir, kb)
    try:
        action_id = store.record_action(
            actor=action.actor, action=action.kind, group_id=action.group_id,
            questions=[q for qs in action.questions.values() for q in qs], entry_id=action.entry_id,
            file=action.path, effect=effect, interactions=interactions)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, loaded, action_id


class Live:
    """The serving assistant of one knowledge folder and index folder, and the background work on them."""

    sets: tuple[tuple[Path, ...], Path | None] = (DEV_SETS, TEST_SET)  # what actions are measured on

    def __init__(self, settings: Settings):
        self.settings = settings
        self._assistant: Assistant | None = None
        self._lock = threading.RLock()  # loading and switching
        self._work = threading.Lock()   # one measurement or save at a time
        self._evaluator: Evaluator | None = None
        self._embedder: SeededEmbedder | None = None
        self._warmed: Job | None = None
        self.jobs: dict[str, Job] = {}
        self.switched: list[tuple[float, str]] = []  # (when, the knowledge digest switched to)

    # -- the assistant ------------------------------------------------------------------------------
    def assistant(self, load: Callable[[], Assistant] | None = None) -> Assistant:
        """The assistant to answer with now; the first call loads it with `load` (default: load_assistant)."""
        current = self._assistant
        if current is not None:
            return current
        with self._lock:
            if self._assistant is None:
                if load is None:
                    from retrieval.loading import load_assistant

                    def load() -> Assistant:
                        return load_assistant(self.settings)
                self._assistant = load()
            return self._assistant

    def switch(self, assistant: Assistant) -> None:
        """Answer with `assistant` from now on (one assignment: a question sees the old one or the new one)."""
        with self._lock:
            self._assistant = assistant
            self.switched.append((time.time(), assistant.kb.digest))
        log.warning("Switched to the index of knowledge %s (%d entries).", assistant.kb.digest[:12],
                    len(assistant.kb.entries))

    def evaluator(self) -> Evaluator:
        with self._lock:
            if self._evaluator is None:
                self._evaluator = Evaluator(self.assistant().embedder, *self.sets)
            return self._evaluator

    def embedder(self) -> SeededEmbedder:
        """The embedder index builds go through: it remembers every vector by text, seeded from the live index."""
        with self._lock:
            if self._embedder is None:
                current = self.assistant()
                self._embedder = SeededEmbedder(current.embedder, current.index)
            return self._embedder

    def warm_up(self) -> Job:
        """Once per process, in the background: score the live assistant and embed what an index build embeds
        beyond the index's own keys, so that measuring the operator's first action costs only what it adds."""
        with self._lock:
            if self._warmed is None or self._warmed.status == "failed":
                self._warmed = self.run("score the development and test sets; prepare index builds", lambda job: (
                    job.say("scoring the development and test sets"), self.evaluator().score(self.assistant()),
                    job.say("embedding the knowledge base's context copies"),
                    warm(self.embedder(), self.assistant().kb))[1])
            return self._warmed

    # -- background work ----------------------------------------------------------------------------
    def run(self, what: str, work: Callable[[Job], Any]) -> Job:
        """Start `work(job)` in a background thread, after the work started before it; returns the job."""
        job = Job(uuid.uuid4().hex[:12], what)
        self.jobs[job.id] = job
        for old in list(self.jobs)[:-KEEP_JOBS]:
            if self.jobs[old].over:
                del self.jobs[old]

        def body() -> None:
            with self._work:
                job.status = "running"
                try:
                    job.result = work(job)
                    job.status = "done"
                except Exception as exc:  # shown to the operator; the serving assistant is untouched
                    log.exception("%s failed", what)
                    job.error = f"{type(exc).__name__}: {exc}"
                    job.status = "failed"
                finally:
                    job.finished = time.time()

        threading.Thread(target=body, name=f"inbox-{job.id}", daemon=True).start()
        return job

    def measure(self, action: Action, groups: Sequence[Group] = ()) -> Job:
        """Measure `action` in the background; the job's result is an Effect."""
        return self.run(f"measure {action.kind} {action.group_id}", lambda job: measure(
            action, self.assistant(), self.settings.knowledge_dir, self.evaluator(), groups, job.say,
            self.embedder()))

    def save(self, effect: Effect, store, interactions: Sequence[int] = ()) -> Job:
        """Save a measured action, then switch to its index in the background; the job's result is the
        action's id. Refused (StaleEffect) when another action was saved since it was measured."""
        return self.run(f"save {effect.action.kind} {effect.action.group_id}",
                        lambda job: self._save(job, effect, store, interactions))

    def changed_on_disk(self) -> bool:
        """Whether the knowledge folder differs from what the assistant was loaded from (a file written by the
        command line, an edit, a `git pull`)."""
        try:
            return digest_of(self.settings.knowledge_dir) != self.assistant().kb.digest
        except OSError:
            return False

    def reload(self) -> Job:
        """Load the knowledge folder again and switch to its index (built in the background if need be)."""
        def work(job: Job) -> str:
            now = self.assistant()
            kb = load_knowledge(self.settings.knowledge_dir)
            if kb.digest == now.kb.digest:
                job.say("nothing changed")
                return kb.digest
            index = load_or_build(kb, self.embedder(), self.settings.index_dir, job.say)
            self.switch(serving_copy(now, kb, index))
            job.say("the chat answers from the new index")
            return kb.digest
        return self.run("load the knowledge folder again", work)

    def _save(self, job: Job, effect: Effect, store, interactions: Sequence[int]) -> int:
        now = self.assistant()
        if effect.base_digest != now.kb.digest:
            raise StaleEffect("the knowledge changed after this action was measured (another action was saved):"
                              " measure it again")
        path, kb, action_id = file_action(effect.action, self.settings.knowledge_dir, store, interactions,
                                          effect.summary(), now.kb)
        job.say(f"wrote {path} and recorded it (action {action_id})")
        if kb.digest == now.kb.digest:
            return action_id  # a draft: nothing served changes
        if effect.index is not None and effect.index.manifest.knowledge_digest == kb.digest:
            job.say("switching to the index the action was measured with")
            save_index(effect.index, self.settings.index_dir)
            index = effect.index
        else:
            job.say("building the index")
            index = load_or_build(kb, self.embedder(), self.settings.index_dir, job.say)
        self.switch(serving_copy(now, kb, index))
        job.say("the chat answers from the new index")
        return action_id


_lives: dict[tuple[str, str], Live] = {}
_lives_lock = threading.Lock()


def live(settings: Settings | None = None) -> Live:
    """The process's one Live for the configured knowledge and index folders."""
    settings = settings or Settings.from_env()
    key = (str(Path(settings.knowledge_dir).resolve()), str(Path(settings.index_dir).resolve()))
    with _lives_lock:
        if key not in _lives:
            _lives[key] = Live(settings)
        return _lives[key]


def serving(load: Callable[[], Assistant], settings: Settings | None = None) -> Assistant:
    """For a page: the assistant to answer with on this run (`load` gives the first one, once)."""
    return live(settings).assistant(load)
