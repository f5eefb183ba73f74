"""Assistant: from a question (and the provider chosen earlier) to an answer, an ask-back or a decline."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.answer import Answer, Choice, Hit, Kind, render_chunk
from retrieval.serving.chunks import Chunk
from retrieval.serving.embedder import Embedder
from retrieval.serving.index import SearchIndex
from retrieval.serving.providers import ProviderFinder
from retrieval.serving.ranking import Candidate, Ranker, RankingConfig, Vocabulary
from retrieval.serving.safety import mask_secrets
from retrieval.serving.text import HAN, LATIN, language_of

# The order in which follow-ups are suggested when an entry names none.
FOLLOW_UP_TOPICS = ("topup_steps", "payment_failed", "auto_topup", "expiry", "amount", "payment_methods",
                    "refund", "support", "safety")


@dataclass(frozen=True)
class DecisionConfig:
    """When to decline and when to ask which entry was meant; calibrated on the development set
    (`python -m retrieval eval --calibrate`; the README has the numbers)."""

    # Decline a question whose best phrasing is less similar than this...
    min_dense: float = 0.91
    # ...a lower bar once a provider is known (named, or chosen earlier in the conversation)...
    known_provider_bonus: float = 0.08
    # ...and, with no provider known, when a question we decline is nearly as close as our best phrasing,
    min_margin_off_topic: float = 0.04
    # or when under this share of its words appear anywhere in the knowledge base.
    min_coverage: float = 0.45
    # A declined question this close to a phrasing gets the nearest entries as suggestions.
    suggest_floor: float = 0.88
    suggestions: int = 3
    # With a provider known, its own entries are preferred to general advice by this much.
    own_provider_bonus: float = 0.05
    # Offer two entries when their scores are this close and their topics differ.
    clarify_margin: float = 0.003
    hits: int = 5


@dataclass(frozen=True)
class DeclineSignals:
    """What the decision to decline looks at, kept apart so calibration can replay it cheaply."""

    dense: float          # the best phrasing's cosine
    off_topic: float      # the best cosine with a question we decline
    coverage: float       # share of the question's words the knowledge base uses
    provider_known: bool  # named in the question, or chosen earlier

    def declines(self, d: DecisionConfig) -> bool:
        if self.provider_known:
            return self.dense < d.min_dense - d.known_provider_bonus
        return (self.dense < d.min_dense or self.dense - self.off_topic < d.min_margin_off_topic
                or self.coverage < d.min_coverage)


def _best_per_cell(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per (provider, topic): eight scam warnings should not crowd out every other answer."""
    seen: set[tuple[str, str]] = set()
    out = []
    for c in candidates:
        if (c.provider, c.topic) not in seen:
            seen.add((c.provider, c.topic))
            out.append(c)
    return out


class Assistant:
    """Read-only after construction, so one instance can serve many threads."""

    def __init__(self, kb: KnowledgeBase, index: SearchIndex, embedder: Embedder,
                 ranking: RankingConfig = RankingConfig(), decision: DecisionConfig = DecisionConfig(),
                 max_question_chars: int = 500):
        self.kb, self.index, self.embedder = kb, index, embedder
        self.ranker = Ranker(kb, index, embedder, ranking)
        self.finder = ProviderFinder(kb)
        self.vocabulary = Vocabulary(kb)
        self.decision = decision
        self.max_chars = max_question_chars
        self.chunks: dict[tuple[str, str], Chunk] = {(c.entry_id, c.language): c for c in index.chunks}

    # -- the one public question path -------------------------------------------------------
    def ask(self, question: str, provider: str | None = None, language: str | None = None,
            topic: str | None = None) -> Answer:
        """Answer `question`; `provider` is the one carried from earlier, `language` the user's choice,
        `topic` the previous answer's topic (so "what about Mint?" keeps it)."""
        if not isinstance(question, str):
            question = "" if question is None else str(question)
        masked = mask_secrets(question)
        text = masked.text.strip()
        lang = language if language in LANGUAGES else language_of(text, fallback="zh")
        notices = [self.kb.message("secret_warning", lang)] if masked.had_secrets else []
        if len(text) > self.max_chars:
            text = text[:self.max_chars]
            notices.append(self.kb.message("truncated", lang, limit=self.max_chars))
        if not isinstance(provider, str) or provider not in self.kb.providers:
            provider = None
        base = dict(question=text, language=lang, notices=tuple(notices), secrets=masked.found)
        if not text:
            return Answer(provider=provider, kind=Kind.EMPTY, markdown=self.kb.message("empty_question", lang), **base)
        named = self.finder.find(text)
        provider = named or provider
        if not (HAN.search(text) or LATIN.search(text)):  # "？？？", emoji, digits alone
            return self._decline(provider, [], base)
        ranking = self.ranker.rank(self.finder.strip(text))
        candidates = ranking.candidates
        signals = DeclineSignals(ranking.best_dense, ranking.off_topic, self.vocabulary.coverage(text),
                                 provider is not None)
        if signals.declines(self.decision):
            return self._decline(provider, candidates, base, near=signals.dense >= self.decision.suggest_floor)
        if provider is None:
            return self._without_provider(candidates, base)
        return self._with_provider(candidates, provider, base)

    def answer_entry(self, entry_id: str, language: str, question: str = "") -> Answer:
        """Show one entry directly (a clicked suggestion or "did you mean" choice)."""
        entry = self.kb.by_id[entry_id]
        base = dict(question=question or entry.title[language], language=language)
        return self._answer(entry_id, entry.provider, [], base)

    # -- decisions --------------------------------------------------------------------------
    def _allowed(self, candidates: list[Candidate], provider: str) -> list[Candidate]:
        """The provider's own entries, and general ones on topics it does not cover; its own come first
        unless a general one is clearly better."""
        covered = {e.topic for e in self.kb.entries_for(provider)}
        allowed = [c for c in candidates
                   if c.provider == provider or (c.provider == "general" and c.topic not in covered)]
        bonus = self.decision.own_provider_bonus
        return _best_per_cell(sorted(allowed, key=lambda c: -(c.fused + (bonus if c.provider == provider else 0.0))))

    def _with_provider(self, candidates: list[Candidate], provider: str, base: dict) -> Answer:
        allowed = self._allowed(candidates, provider)
        first = allowed[0]
        second = allowed[1] if len(allowed) > 1 else None
        by_score = sorted(allowed, key=lambda c: -c.fused)  # alternatives go by score alone
        if second and first.topic != second.topic and first.fused - second.fused < self.decision.clarify_margin:
            return self._clarify([first, second], provider, by_score, base)
        return self._answer(first.entry_id, provider, by_score, base)

    def _without_provider(self, candidates: list[Candidate], base: dict) -> Answer:
        """No provider known: ask which one when the topic depends on it, else answer in general."""
        top = candidates[0]
        general = _best_per_cell([c for c in candidates if c.provider == "general"])  # what the user sees
        if self.kb.topics[top.topic].needs_provider:
            return self._ask_provider(top.topic, candidates, general, base)
        if top.provider == "general":
            return self._answer(top.entry_id, None, general, base)
        same_topic = [c for c in general if c.topic == top.topic]
        return self._answer((same_topic or general)[0].entry_id, None, general, base)

    # -- building answers -------------------------------------------------------------------
    def _hits(self, candidates: list[Candidate], language: str, first: str | None = None) -> tuple[Hit, ...]:
        ordered = sorted(candidates, key=lambda c: c.entry_id != first)[: self.decision.hits]
        hits = []
        for c in ordered:
            chunk = self.chunks[(c.entry_id, language)]
            hits.append(Hit(chunk.id, c.entry_id, c.provider, c.topic, c.dense, chunk.title, chunk.text))
        return tuple(hits)

    def _answer(self, entry_id: str, provider: str | None, candidates: list[Candidate], base: dict) -> Answer:
        lang = base["language"]
        entry = self.kb.by_id[entry_id]
        chunk = self.chunks[(entry_id, lang)]
        markdown = render_chunk(self.kb, chunk, lang)
        from_general = provider is not None and entry.provider == "general" and \
            not self.kb.entries_for(provider, entry.topic)
        if from_general:
            name = self.kb.providers[provider].name[lang]
            markdown = f"_{self.kb.message('from_general', lang, provider=name)}_\n\n{markdown}"
        return Answer(provider=provider or (entry.provider if entry.provider != "general" else None),
                      kind=Kind.ANSWER, markdown=markdown, hits=self._hits(candidates or [], lang, entry_id)
                      if candidates else self._entry_hit(entry_id, lang), entry_id=entry_id,
                      related=self._related(entry_id, lang), from_general=from_general,
                      has_steps=bool(chunk.steps), topic=entry.topic, **base)

    def _entry_hit(self, entry_id: str, language: str) -> tuple[Hit, ...]:
        e, chunk = self.kb.by_id[entry_id], self.chunks[(entry_id, language)]
        return (Hit(chunk.id, entry_id, e.provider, e.topic, 1.0, chunk.title, chunk.text),)

    def _related(self, entry_id: str, language: str) -> tuple[Choice, ...]:
        entry = self.kb.by_id[entry_id]
        ids = list(entry.related)
        if not ids:
            own = {e.topic: e.id for e in reversed(self.kb.entries_for(entry.provider))}
            ids = [own[t] for t in FOLLOW_UP_TOPICS if t in own and t != entry.topic]
        return tuple(Choice(self.kb.by_id[i].title[language], self.kb.by_id[i].questions[language][0],
                            entry_id=i) for i in ids[:3])

    def _clarify(self, pair: list[Candidate], provider: str | None, candidates: list[Candidate],
                 base: dict) -> Answer:
        lang = base["language"]
        choices = tuple(Choice(self.kb.by_id[c.entry_id].title[lang], base["question"], provider, c.entry_id)
                        for c in pair)
        return Answer(provider=provider, kind=Kind.CLARIFY, markdown=self.kb.message("clarify", lang),
                      hits=self._hits(candidates, lang), choices=choices, **base)

    def _ask_provider(self, topic: str, candidates: list[Candidate], general: list[Candidate],
                      base: dict) -> Answer:
        lang = base["language"]
        likely: list[str] = []
        for c in candidates:
            if c.topic == topic and c.provider != "general" and c.provider not in likely:
                likely.append(c.provider)
        for pid in self.kb.providers:  # the rest, so every provider can be picked
            if pid != "general" and pid not in likely:
                likely.append(pid)
        # brand names: short enough for a row of buttons, and the same in both languages
        choices = tuple(Choice(self.kb.providers[p].name["en"], base["question"], p) for p in likely)
        general_on_topic = [c for c in general if c.topic == topic]
        first = general_on_topic[0].entry_id if general_on_topic else None
        lead = self.kb.message("ask_provider", lang)
        details = ""
        if first:  # general advice now; the exact steps once they say which provider
            chunk = self.chunks[(first, lang)]
            details = f"{self.kb.message('meanwhile_general', lang)}\n\n{render_chunk(self.kb, chunk, lang)}"
        markdown = f"{lead}\n\n{details}" if details else lead
        return Answer(provider=None, kind=Kind.ASK_PROVIDER, markdown=markdown, entry_id=first, topic=topic,
                      lead=lead, details=details,
                      hits=self._hits(general, lang, first), choices=tuple(choices),
                      has_steps=bool(first and self.chunks[(first, lang)].steps), **base)

    def _decline(self, provider: str | None, candidates: list[Candidate], base: dict, near: bool = False) -> Answer:
        """A kind no, what the assistant can help with, the provider's help page, and, when the question
        came close, the nearest entries to open with one click."""
        lang = base["language"]
        markdown = self.kb.message("decline", lang)
        if provider and provider != "general":
            p = self.kb.providers[provider]
            markdown += "\n\n" + self.kb.message("decline_support", lang, provider=p.name[lang], url=p.support_url)
        # never a guessed provider: with none known, the nearest general advice
        nearest = (self._allowed(candidates, provider) if provider
                   else _best_per_cell([c for c in candidates if c.provider == "general"]))
        choices: tuple[Choice, ...] = ()
        if near and nearest:
            markdown += "\n\n" + self.kb.message("decline_suggest", lang)
            choices = tuple(Choice(self.kb.by_id[c.entry_id].title[lang], base["question"], provider, c.entry_id)
                            for c in nearest[:self.decision.suggestions])
        return Answer(provider=provider, kind=Kind.DECLINE, markdown=markdown, choices=choices,
                      hits=self._hits(nearest, lang) if nearest else (), **base)
