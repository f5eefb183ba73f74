"""Assistant: from a question (and the provider chosen earlier) to an answer, an ask-back or a decline.

The flow of `ask`: understand the question (retrieval/serving/understand.py); answer small talk and
gibberish at once, and decline at once a question about a service that is not ours; embed what is left;
rank every entry (ranking.py) and weigh each topic by the topic model (classifier.py); decline what is not
ours (decide.py); then compose provider x topic into the entry shown: the provider's own entry on the
topic, else the general one, else ask which provider.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.answer import Answer, Choice, Hit, Kind, render_chunk
from retrieval.serving.chunks import Chunk
from retrieval.serving.decide import DecisionConfig, DeclineSignals, entry_scores, topic_log_probabilities
from retrieval.serving.embedder import Embedder
from retrieval.serving.index import SearchIndex
from retrieval.serving.ranking import Candidate, Ranker, Ranking, RankingConfig, Vocabulary
from retrieval.serving.small_talk import SmallTalkPhrases
from retrieval.serving.understand import Reader, Understood

# The order in which follow-ups are suggested when an entry names none.
FOLLOW_UP_TOPICS = ("topup_steps", "payment_failed", "auto_topup", "expiry", "amount", "payment_methods",
                    "refund", "support", "safety")


@dataclass(frozen=True)
class Offer:
    """One topic the question may be about, with the entry that answers it for this provider."""

    entry_id: str
    provider: str      # the entry's provider ("general" for general advice)
    topic: str
    score: float       # the probability of this topic (and so of this entry): what offers are ordered by
    similarity: float  # the entry's best phrasing's cosine


@dataclass(frozen=True)
class Echo:
    """What every answer repeats of the question: as understood, in the language it is answered in, and
    the notices said before it (secrets masked, question cut)."""

    question: str
    language: str
    notices: tuple[str, ...] = ()

    @classmethod
    def of(cls, u: Understood) -> Echo:
        return cls(u.text, u.language, u.notices)

    def answer(self, **fields) -> Answer:
        return Answer(question=self.question, language=self.language, notices=self.notices, **fields)


@dataclass(frozen=True)
class Reading:
    """Everything `ask` knows about a question once it has been ranked; calibration replays it."""

    understood: Understood
    ranking: Ranking
    topic_log_probability: np.ndarray | None  # per topic of the knowledge base (kb.topics order)
    signals: DeclineSignals


class Assistant:
    """Read-only after construction, so one instance can serve many threads."""

    def __init__(self, kb: KnowledgeBase, index: SearchIndex, embedder: Embedder,
                 ranking: RankingConfig = RankingConfig(), decision: DecisionConfig = DecisionConfig(),
                 max_question_chars: int = 500):
        self.kb, self.index, self.embedder = kb, index, embedder
        self.ranker = Ranker(kb, index, embedder, ranking)
        self.vocabulary = Vocabulary(kb)
        self.reader = Reader(kb, self.vocabulary.counts, max_question_chars)
        self.decision = decision
        self.max_chars = max_question_chars
        self.chunks: dict[tuple[str, str], Chunk] = {(c.entry_id, c.language): c for c in index.chunks}
        self.classifiers = index.classifiers
        self.topic_ids = list(kb.topics)
        self.other_services = {s.name: s for s in kb.other_services}
        self.other_topics = {t.name: t for t in kb.other_topics}
        self.small_talk_phrases = SmallTalkPhrases(
            {intent.id: [q for qs in intent.questions.values() for q in qs]
             for intent in kb.conversation.small_talk.values()})

    # -- the one public question path -------------------------------------------------------
    def understand(self, question: str, provider: str | None = None, language: str | None = None,
                   topic: str | None = None) -> Understood:
        """What the assistant reads in a question, before anything is ranked."""
        return self.reader.read(question, provider, language, topic)

    def read(self, understood: Understood) -> Reading:
        """Rank every entry for an understood question, and gather what the decline decision looks at."""
        vector = self.embedder.embed_queries([understood.matched])[0]
        ranking = self.ranker.rank(understood.matched, vector)
        topic_lp = None
        scope = topic = words = topics = None
        if self.classifiers is not None:
            c = self.classifiers
            by_vector = dict(zip(c.topic.classes, c.topic.probabilities(vector)[0], strict=True))
            by_words = dict(zip(c.word_topic.linear.classes, c.word_topic.probabilities(understood.matched),
                                strict=True))
            topic_lp = topic_log_probabilities(np.array([by_vector.get(t, 0.0) for t in self.topic_ids]),
                                               np.array([by_words.get(t, 0.0) for t in self.topic_ids]),
                                               self.decision.word_topic_weight)
            topic = float(c.decline_topic.probabilities(vector)[0].max())
            scope = float(c.scope.probabilities(vector)[0][c.scope.classes.index("in")])
            words = c.words.probability(understood.matched)
            topics = float(np.exp(topic_lp.max()))
        coverage = self.vocabulary.coverage(understood.spelled)
        signals = DeclineSignals(ranking.best_similarity, ranking.off_topic, coverage,
                                 understood.provider is not None or bool(understood.compared), scope, topic,
                                 words, topics, ours=understood.ours, not_ours=understood.other_membership)
        return Reading(understood, ranking, topic_lp, signals)

    def ask(self, question: str, provider: str | None = None, language: str | None = None,
            topic: str | None = None) -> Answer:
        """Answer `question`; `provider` is the one carried from earlier, `language` the user's choice,
        `topic` the previous answer's topic (so "what about Mint?" keeps it)."""
        early, reading = self.before_deciding(self.understand(question, provider, language, topic))
        return early if early is not None else self.decide(reading)

    def before_deciding(self, u: Understood) -> tuple[Answer | None, Reading | None]:
        """What is answered before the decline rule is asked: nothing typed, nothing but small-talk phrases
        ("thanks, bye"), gibberish, a question that names a service that is not ours and none of our providers
        ("中国移动怎么交话费") or a topic that is not ours and no word of money ("Mint APN 怎么设置"), none of them
        ranked; then small talk near a phrase ("多谢啦") and "那 Mint 呢" (the previous topic for another provider).
        `(None, reading)` when the question goes on to the rule; calibration replays exactly the questions that do."""
        echo = Echo.of(u)
        if not u.text:
            return echo.answer(provider=u.provider, kind=Kind.EMPTY,
                               markdown=self.kb.message("empty_question", u.language)), None
        intent = self.small_talk_phrases.intent(u.text)  # nothing but its phrases: "thanks a lot, that helped", "byeee"
        if intent:
            return self._small_talk(intent, u, echo), None
        if u.gibberish:
            markdown = self.kb.message("not_understood", u.language) + self._support_line(u.provider, u.language)
            return echo.answer(provider=u.provider, kind=Kind.NOT_UNDERSTOOD, markdown=markdown), None
        if u.other:  # someone else's top-up: said at once, nothing ranked
            service = self.other_services[u.other].named(u.language)
            markdown = self.kb.message("decline_other", u.language, service=service)
            return echo.answer(provider=u.provider, kind=Kind.DECLINE, markdown=markdown), None
        if u.other_topic:  # a question about the phone, not paying for it: said at once, with the carrier's help page
            topic = self.other_topics[u.other_topic].named(u.language)
            markdown = (self.kb.message("decline_topic", u.language, topic=topic)
                        + self._support_line(u.provider, u.language))
            return echo.answer(provider=u.provider, kind=Kind.DECLINE, markdown=markdown), None
        reading = self.read(u)
        intent = self.small_talk_intent(u, reading.ranking)
        if intent:
            return self._small_talk(intent, u, echo), reading
        if u.topic and (u.follow_up or ((u.says_which or u.asks_same) and self._names_no_topic(reading))):
            return self._follow_up(u, reading, echo), reading
        return None, reading

    def _names_no_topic(self, reading: Reading) -> bool:
        """Whether a message that may be the last question again (a reply to "which provider?" that asks nothing,
        "visible, the basic plan"; the same again for another provider, "same deal with tmo?") names no topic of its
        own: the topic models (fused, as the ranking uses them) find no topic in its words but the overview or the
        topic carried, or none with at least `says_which_topic_probability`. "Tello, my card got declined" and "mint
        扣了两次钱" name a topic of their own (payment failed, refund) and are questions of their own."""
        if reading.topic_log_probability is None:
            return False
        best = int(np.argmax(reading.topic_log_probability))
        return (self.topic_ids[best] in ("overview", reading.understood.topic)
                or float(np.exp(reading.topic_log_probability[best])) < self.decision.says_which_topic_probability)

    def decide(self, reading: Reading) -> Answer:
        """Decline what is not ours; else answer, ask which provider, or ask "did you mean"."""
        u, echo = reading.understood, Echo.of(reading.understood)
        offers = self.offers(reading)
        if reading.signals.declines(self.decision):
            return self._decline(u.provider, offers, echo, near=reading.signals.near(self.decision))
        if u.compared and offers and self.kb.topics[offers[0].topic].needs_provider:
            # several providers named, and what is asked depends on the provider ("leaving T-Mobile for Visible,
            # where is the transfer PIN"): the first one named, as with two
            u = replace(u, provider=u.named)
            offers = self.offers(replace(reading, understood=u))
        if u.provider is None:
            return self._without_provider(offers, echo)
        return self._with_provider(offers, u.provider, echo)

    def answer_entry(self, entry_id: str, language: str, question: str = "") -> Answer:
        """Show one entry directly (a clicked suggestion or "did you mean" choice)."""
        entry = self.kb.by_id[entry_id]
        return self._answer(entry_id, entry.provider, [], Echo(question or entry.title[language], language))

    # -- deciding ---------------------------------------------------------------------------
    def offers(self, reading: Reading) -> list[Offer]:
        """One offer per topic, most probable first: for each topic the entry that would answer it (the
        provider's own, else general; with no provider, the best general entry) and the topic's probability,
        from the best ranking signals among the topic's allowed entries and the topic model."""
        provider = reading.understood.provider
        covered = {e.topic for e in self.kb.entries_for(provider)} if provider else set()
        best: dict[str, Candidate] = {}     # per topic: the entry shown
        evidence: dict[str, float] = {}     # per topic: the best fused score speaking for it
        for c in reading.ranking.candidates:  # best first
            if provider:
                if not (c.provider == provider or (c.provider == "general" and c.topic not in covered)):
                    continue
                bonus = self.decision.own_provider_bonus if c.provider == provider else 0.0
                evidence.setdefault(c.topic, c.fused + bonus)
                best.setdefault(c.topic, c)
            else:
                evidence.setdefault(c.topic, c.fused)
                if c.provider == "general":
                    best.setdefault(c.topic, c)
        topics = [t for t in evidence if t in best]
        if not topics:
            return []
        lp = None
        if reading.topic_log_probability is not None:
            lp = np.array([reading.topic_log_probability[self.topic_ids.index(t)] for t in topics])
        scores = entry_scores(np.array([evidence[t] for t in topics]), lp, self.decision)
        offers = [Offer(best[t].entry_id, best[t].provider, t, float(s), best[t].similarity)
                  for t, s in zip(topics, scores, strict=True)]
        return sorted(offers, key=lambda o: -o.score)

    def small_talk_intent(self, u: Understood, ranking: Ranking) -> str | None:
        """The small-talk intent of a short message near one of its phrases and nearer than any entry ("多谢啦"
        near "谢谢"); a message of nothing but its phrases was answered before anything was ranked."""
        intent, similarity = ranking.small_talk
        d = self.decision
        short = len(u.text.split()) <= d.small_talk_max_words and len(u.text) <= 4 * d.small_talk_max_words
        if intent and short and u.named is None and similarity >= d.small_talk_min \
                and similarity >= ranking.best_similarity:
            return intent
        return None

    def _small_talk(self, intent: str, u: Understood, echo: Echo) -> Answer:
        return echo.answer(provider=u.provider, kind=Kind.SMALL_TALK,
                           markdown=self.kb.conversation.small_talk[intent].answer[u.language].strip())

    def _with_provider(self, offers: list[Offer], provider: str, echo: Echo) -> Answer:
        first = offers[0]
        second = offers[1] if len(offers) > 1 else None
        if second and first.score - second.score < self.decision.clarify_margin:
            return self._clarify([first, second], provider, offers, echo)
        return self._answer(first.entry_id, provider, offers, echo)

    def _without_provider(self, offers: list[Offer], echo: Echo) -> Answer:
        """No provider known: ask which one when the topic depends on it, else answer in general."""
        top = offers[0]
        if self.kb.topics[top.topic].needs_provider:
            return self._ask_provider(top.topic, offers, echo)
        return self._answer(top.entry_id, None, offers, echo)

    def _follow_up(self, u: Understood, reading: Reading, echo: Echo) -> Answer:
        """"那 Mint 呢": the previous topic, for the provider just named."""
        own = [c for c in reading.ranking.candidates if c.provider == u.provider and c.topic == u.topic]
        general = [c for c in reading.ranking.candidates if c.provider == "general" and c.topic == u.topic]
        chosen = (own or general)[0]
        offer = Offer(chosen.entry_id, chosen.provider, chosen.topic, 1.0, chosen.similarity)
        return self._answer(chosen.entry_id, u.provider, [offer], echo)

    # -- building answers -------------------------------------------------------------------
    def _hits(self, offers: list[Offer], language: str) -> tuple[Hit, ...]:
        hits = []
        for o in offers[: self.decision.hits]:
            chunk = self.chunks[(o.entry_id, language)]
            hits.append(Hit(chunk.id, o.entry_id, o.provider, o.topic, o.score, chunk.title, chunk.text,
                            o.similarity))
        return tuple(hits)

    def _answer(self, entry_id: str, provider: str | None, offers: list[Offer], echo: Echo) -> Answer:
        lang = echo.language
        entry = self.kb.by_id[entry_id]
        chunk = self.chunks[(entry_id, lang)]
        markdown = render_chunk(self.kb, chunk, lang)
        from_general = provider is not None and entry.provider == "general" and \
            not self.kb.entries_for(provider, entry.topic)
        if from_general:
            name = self.kb.providers[provider].short_name(lang)
            markdown = f"_{self.kb.message('from_general', lang, provider=name)}_\n\n{markdown}"
        hits = self._hits(offers, lang) if offers else self._entry_hit(entry_id, lang)
        return echo.answer(provider=provider or (entry.provider if entry.provider != "general" else None),
                           kind=Kind.ANSWER, markdown=markdown, hits=hits, entry_id=entry_id,
                           related=self._related(entry_id, lang),
                           has_steps=bool(chunk.steps), topic=entry.topic)

    def _entry_hit(self, entry_id: str, language: str) -> tuple[Hit, ...]:
        e, chunk = self.kb.by_id[entry_id], self.chunks[(entry_id, language)]
        return (Hit(chunk.id, entry_id, e.provider, e.topic, 1.0, chunk.title, chunk.text, 1.0),)

    def _related(self, entry_id: str, language: str) -> tuple[Choice, ...]:
        entry = self.kb.by_id[entry_id]
        ids = list(entry.related)
        if not ids:
            own = {e.topic: e.id for e in reversed(self.kb.entries_for(entry.provider))}
            ids = [own[t] for t in FOLLOW_UP_TOPICS if t in own and t != entry.topic]
        return tuple(Choice(self.kb.by_id[i].title[language], self.kb.by_id[i].questions[language][0],
                            entry_id=i) for i in ids[:3])

    def _clarify(self, pair: list[Offer], provider: str | None, offers: list[Offer], echo: Echo) -> Answer:
        lang = echo.language
        choices = tuple(Choice(self.kb.by_id[o.entry_id].title[lang], echo.question, provider, o.entry_id)
                        for o in pair)
        return echo.answer(provider=provider, kind=Kind.CLARIFY, markdown=self.kb.message("clarify", lang),
                           hits=self._hits(offers, lang), choices=choices, topic=pair[0].topic)

    def provider_choices(self, question: str) -> tuple[Choice, ...]:
        """The "which provider?" buttons: consumer services first, most used first (knowledge/conversation.yaml)."""
        order = [p for p in self.kb.conversation.provider_order if p in self.kb.providers]
        order += [p for p in self.kb.providers if p != "general" and p not in order]
        # brand names: short enough for a row of buttons, and the same in both languages
        return tuple(Choice(self.kb.providers[p].name["en"], question, p) for p in order)

    def _ask_provider(self, topic: str, offers: list[Offer], echo: Echo) -> Answer:
        lang = echo.language
        first = next((o for o in offers if o.topic == topic), None)
        lead = self.kb.message("ask_provider", lang)
        details = ""
        if first:  # general advice now; the exact steps once they say which provider
            chunk = self.chunks[(first.entry_id, lang)]
            details = f"{self.kb.message('meanwhile_general', lang)}\n\n{render_chunk(self.kb, chunk, lang)}"
        markdown = f"{lead}\n\n{details}" if details else lead
        return echo.answer(provider=None, kind=Kind.ASK_PROVIDER, markdown=markdown,
                           entry_id=first.entry_id if first else None, topic=topic, lead=lead, details=details,
                           hits=self._hits(offers, lang), choices=self.provider_choices(echo.question),
                           has_steps=bool(first and self.chunks[(first.entry_id, lang)].steps))

    def _support_line(self, provider: str | None, language: str) -> str:
        if not provider or provider == "general":
            return ""
        p = self.kb.providers[provider]
        return "\n\n" + self.kb.message("decline_support", language, provider=p.name[language], url=p.support_url)

    def _decline(self, provider: str | None, offers: list[Offer], echo: Echo, near: bool = False) -> Answer:
        """A kind no, what the assistant can help with, the provider's help page, and, when the question
        came close, the nearest entries to open with one click."""
        lang = echo.language
        markdown = self.kb.message("decline", lang) + self._support_line(provider, lang)
        choices: tuple[Choice, ...] = ()
        if near and offers:
            markdown += "\n\n" + self.kb.message("decline_suggest", lang)
            choices = tuple(Choice(self.kb.by_id[o.entry_id].title[lang], echo.question, provider, o.entry_id)
                            for o in offers[: self.decision.suggestions])
        return echo.answer(provider=provider, kind=Kind.DECLINE, markdown=markdown, choices=choices,
                           hits=self._hits(offers, lang) if offers else ())


__all__ = ["LANGUAGES", "Assistant", "DecisionConfig", "Echo", "Offer", "Reading"]
