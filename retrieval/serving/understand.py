"""Understanding: what a question says before anything is ranked.

Secrets are masked, long input cut, the language and the provider found, provider names taken out and
the vocabulary's variants made canonical (what is matched), and what needs no model decided: whether the
message is only "that provider's turn" of the previous question ("那 Mint 呢"), whether it is typing by
accident ("asdfgh"), which service that is not ours it names ("中国移动"), which topic that is not ours
("APN", "语音信箱"), and whether it speaks of keeping a US number alive ("回国后美国号码怎么保号"), which is ours.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import jieba

from retrieval.knowledge import LANGUAGES, KnowledgeBase
from retrieval.serving.providers import ASCII_WORD, ProviderFinder, compact
from retrieval.serving.safety import mask_secrets
from retrieval.serving.spelling import LATIN_WORD, HanSpeller, Speller, english_zipf
from retrieval.serving.terms import Terms, phrase_pattern
from retrieval.serving.text import HAN, LATIN, language_of, normalise, words

# How much is scanned for secrets before the question is cut: a card number that straddles the cut
# is still seen whole, and a 4 MB paste costs no more than a few kilobytes.
SCAN_FACTOR = 4
# A question that names this many of our providers compares them ("谷歌语音、Tello、US Mobile 哪个保号划算"): it is
# answered in general, not for the first one named. Two are usually one thing about two providers: moving a number
# from one to the other, or "X vs Y", which the first one's own entry answers.
COMPARED = 3
# The kinds of provider whose account is the phone line's own (a carrier's, a business line's): signing in to it is
# ours (account_words). Not Google Voice, whose number receives other services' codes, nor Skype.
LINE_KINDS = ("carrier_prepaid", "mvno_prepaid", "business_phone")
# What a bare action is read as asking ("充话费" as "怎么充话费", "refill" as "how to refill"): the embedding reads
# the three characters 充话费 alone as "how much to top up", the question word tells it what is asked.
HOW_TO = {"zh": "怎么", "en": "how to "}


def _pattern(words) -> re.Pattern | None:
    """One pattern for a knowledge file's word list, each word read as a question is (normalised)."""
    return phrase_pattern({normalise(w) for w in words})


def _every_language(words: dict[str, tuple[str, ...]]) -> list[str]:
    """A list of conversation.yaml's words, every language's in one list."""
    return [w for ws in words.values() for w in ws]


PUNCTUATION_ONLY = re.compile(r"[\s\W_]+")
QUESTION_MARK = re.compile(r"[?？]")
# Where a post's clauses end: after a question or exclamation mark, at a full stop, comma, semicolon or line break.
CLAUSE = re.compile(r"(?<=[?？!！])|[。.,，;；\n]+")


def _unpunctuated(rest: str) -> str:
    """What is left beside a provider's name, without punctuation: "mint?" is a name alone, not gibberish."""
    return "" if not PUNCTUATION_ONLY.sub("", rest) else rest


@dataclass(frozen=True)
class Understood:
    """A question as the assistant reads it; everything after this looks only at these fields."""

    text: str                 # what the user typed: secrets masked, long input cut
    language: str             # "zh" or "en": the user's choice, else the script of the question
    provider: str | None      # named in the question, else the one chosen earlier
    named: str | None         # the provider this question names itself
    spelled: str              # normalised, misspelt English words read as the knowledge base's words
    matched: str              # that, provider names out, the vocabulary's variants canonical: what is ranked
    follow_up: bool           # nothing but a provider's name and follow-up words ("那 Mint 呢")
    topic: str | None         # the previous answer's topic (kept by a follow-up)
    gibberish: bool           # no word anyone knows ("asdfgh"), or no letters at all ("？？？")
    notices: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    other: str | None = None  # a service that is not ours (other_services.yaml), named with no provider of ours
    other_topic: str | None = None  # a topic that is not ours (other_services.yaml), named with no word of ours
    keeps_us_number: bool = False  # speaks of keeping a US number alive ("美国号码怎么保号"): ours, never declined
    # signing in to a phone line of ours ("cant login to mint"), or the account of any provider of ours taken over
    # ("someone took over my google voice"): ours, never declined
    own_account: bool = False
    # paying a phone line of ours was refused ("US Mobile declines my Wise card"), or paying Google Voice or Skype
    # ("a problem processing your payment on Google Voice"): ours, never declined
    own_payment_refused: bool = False
    # paying on a public network ("在机场连公共wifi充话费安全吗"): the safety topic, ours, never declined
    pays_on_public_wifi: bool = False
    # paying a phone line of ours by card ("Ultra…用香港信用卡得唔得"): payment methods or currency, ours, never
    # declined
    pays_line_by_card: bool = False
    # one provider named, none chosen yet, a topic carried and nothing asked ("Mint 的 3个月套餐" after "which
    # provider?"): perhaps a reply saying which provider, if its words name no topic of their own (the assistant judges)
    says_which: bool = False
    # one provider named, a topic carried and a word of the same again ("same deal with tmo?", "h2o 一样步骤吗"): the
    # last question again, if its words name no topic of their own (the assistant judges)
    asks_same: bool = False
    # every provider of ours named, in order, when the question names several ("GV、Tello、US Mobile 哪个划算")
    compared: tuple[str, ...] = ()
    # another app's paid tier, its name not given ("api key 过期了…只能用虚拟信用卡充值"), with no provider of ours
    # named or chosen and no word of a phone number or its bill: not ours, always declined
    other_membership: bool = False

    @property
    def ours(self) -> bool:
        """The question says by its words that it is ours, whatever the decline signals."""
        return (self.keeps_us_number or self.own_account or self.own_payment_refused or self.pays_on_public_wifi
                or self.pays_line_by_card)


class Reader:
    """Turns a raw question into an `Understood`; built once per knowledge base, read-only after."""

    def __init__(self, kb: KnowledgeBase, word_counts: Counter[str], max_chars: int = 500, spelling: bool = True,
                 compared: int = COMPARED):
        """`word_counts`: every word the knowledge base's entries use, with how often (ranking.Vocabulary);
        `spelling`: read misspelt English words as the knowledge base's (False: as typed); `compared`: how many
        providers named make a comparison (0: never, the first one named is always the provider)."""
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        self.kb, self.max_chars, self.compared = kb, max_chars, compared
        self.finder = ProviderFinder(kb)
        self.terms = Terms(kb.vocabulary, kb.product_words)
        self.known_words = set(word_counts)
        talk = kb.conversation
        self.follow_up_words = {normalise(w) for w in _every_language(talk.follow_up_words)}
        self.follow_up_fillers = {normalise(w) for w in _every_language(talk.follow_up_fillers)}
        self.follow_up_answers = {normalise(w) for w in _every_language(talk.follow_up_answers)}
        self.follow_up_any = self.follow_up_words | self.follow_up_fillers | self.follow_up_answers
        self.answer_markers = self.follow_up_words | self.follow_up_answers  # no provider chosen yet
        self.asking = _pattern(_every_language(talk.question_words))
        self.same = _pattern(_every_language(talk.same_words))
        self.corrections = {normalise(w) for w in _every_language(talk.correction_words)}
        self.known_zipf = kb.conversation.known_word_zipf
        # every piece of a provider's name stays as typed: "myAT&T" is read as "myat" and "t", and "myat" is no
        # misspelt word of ours
        names = {w for p in kb.providers.values() for a in (*p.aliases, *p.hints)
                 for w in LATIN_WORD.findall(normalise(a))}
        others = self._other_words(kb)
        self.speller = Speller(word_counts + others, self.follow_up_any | names,
                               self.known_zipf) if spelling else None
        self.han_speller = self._han_speller(kb, word_counts, others) if spelling else None
        self.others = ProviderFinder(kb, {s.name: (s.name, *s.aliases, *([s.en] if s.en else []))
                                          for s in kb.other_services}) if kb.other_services else None
        self.us_number, self.phone = _pattern(kb.us_number_words), _pattern(kb.phone_words)
        self.apps = {s.name for s in kb.other_services if s.kind == "app"}
        plain = [t for t in kb.other_topics if not t.narrow]
        self.topic_of = {normalise(w): t.name for t in plain for w in t.words}
        self.other_topics = phrase_pattern(self.topic_of)
        self.ours = _pattern(kb.ours_words)
        # topics named only beside a provider, by two words together or left to the models by their own words of ours
        self.narrow_topics = [(t, _pattern(t.words), _pattern(t.also),
                               self.ours if t.ours is None else _pattern(t.ours)) for t in kb.other_topics if t.narrow]
        # every topic a word names alone, whatever its words of ours (voicemail has its own): such a word keeps a
        # line's sign-in, refusal or card from being ours ("Cricket 语音信箱登不上"); not a topic named only beside
        # certain providers or by two words together
        self.named_alone = _pattern([w for t in kb.other_topics if not t.providers and not t.also for w in t.words])
        self.keep, self.account, self.refused = (_pattern(kb.keep_words), _pattern(kb.account_words),
                                                 _pattern(kb.refused_words))
        self.takeover, self.number, self.card = (_pattern(kb.takeover_words), _pattern(kb.number_words),
                                                 _pattern(kb.card_words))
        self.public_wifi, self.paying = _pattern(kb.public_wifi_words), _pattern(kb.paying_words)
        self.membership = _pattern(kb.membership_words)
        self.lines = {p.id for p in kb.providers.values() if p.kind in LINE_KINDS}
        # each action by its letters alone ("top-up", "topup" and "top up" are one), read as the first form listed
        self.bare_actions: dict[str, str] = {}
        for action in kb.bare_actions:
            self.bare_actions.setdefault(compact(action), normalise(action))

    @staticmethod
    def _other_words(kb: KnowledgeBase) -> Counter[str]:
        """Words the speller knows besides the entries': the questions we decline, small talk and context.
        A misspelt word of a question we decline is read as that word ("hotspt" as "hotspot"), not as
        one of ours, and "apns" is an out-of-scope word, not a misspelt "apps"."""
        texts = [q for qs in kb.off_topic.values() for q in qs]
        texts += [q for intent in kb.conversation.small_talk.values() for qs in intent.questions.values() for q in qs]
        texts += [s for ss in kb.conversation.context.values() for s in ss]
        return Counter(words(" ".join(texts)))

    def _han_speller(self, kb: KnowledgeBase, word_counts: Counter[str], others: Counter[str]) -> HanSpeller:
        """Chinese words typed by their sound read as the knowledge base's, against jieba's dictionary (what is
        common Chinese and what is ours)."""
        jieba.initialize()
        aliases = [normalise(a) for p in kb.providers.values() for a in (*p.aliases, *p.hints)]
        return HanSpeller(word_counts, known=[*others, *self.follow_up_any], general=jieba.dt.FREQ,
                          general_total=jieba.dt.total, always=aliases)

    def read(self, question: object, provider: object = None, language: object = None,
             topic: object = None) -> Understood:
        if not isinstance(question, str):
            question = "" if question is None else str(question)
        # Surrogates (a lone "\ud800") cannot be encoded and break every later step: drop them first.
        question = question.encode("utf-8", "replace").decode("utf-8")
        masked = mask_secrets(question[: self.max_chars * SCAN_FACTOR])
        text = masked.text.strip()
        lang = language if language in LANGUAGES else language_of(text, fallback="zh")
        notices = [self.kb.message("secret_warning", lang)] if masked.had_secrets else []
        if len(question.strip()) > self.max_chars:
            notices.append(self.kb.message("truncated", lang, limit=self.max_chars))
        text = text[: self.max_chars]
        carried = provider if isinstance(provider, str) and provider in self.kb.providers else None
        norm = normalise(text)
        spelled = self.han_speller.correct(self.speller.correct(norm)) if self.speller else norm
        mentions = self.finder.find_all(spelled)
        named = mentions[0].provider if mentions else None
        several = tuple(dict.fromkeys(m.provider for m in sorted(mentions, key=lambda m: m.start)))
        compared = several if self.compared and len(several) >= self.compared else ()
        rest = self.finder.strip(spelled, keep_names_if_empty=False, matches=mentions)
        corrected = self._corrected(several, carried, rest)
        provider = corrected or (None if compared else named or carried)
        topic = topic if isinstance(topic, str) and topic in self.kb.topics else None
        other_topic = self._other_topic(spelled, provider, several)
        return Understood(
            text=text, language=lang, provider=provider, named=named, spelled=spelled,
            matched=self._how_to(self.terms.apply(rest or spelled)),
            follow_up=(corrected is not None
                       or (len(several) == 1 and self._only_follow_up_words(rest, answering=carried is None))),
            says_which=(len(several) == 1 and carried is None and topic is not None and self._says_which(rest)),
            asks_same=bool(len(several) == 1 and topic is not None and self.same and self.same.search(rest)),
            topic=topic, gibberish=bool(text) and self._gibberish(_unpunctuated(rest) if named else text),
            notices=tuple(notices), secrets=masked.found,
            other=self._other_service(norm) if named is None else None, other_topic=other_topic,
            keeps_us_number=bool(self.keep and self.us_number and self.keep.search(spelled)
                                 and self.us_number.search(spelled)),
            own_account=(self._own_line(provider, spelled, self.account)
                         or self._own_line(provider, spelled, self.takeover, any_kind=True)
                         or self._number_taken_over(provider, spelled)),
            own_payment_refused=(self._own_line(provider, spelled, self.refused, any_kind=True)
                                 and (provider in self.lines or bool(self.paying and self.paying.search(spelled)))),
            pays_line_by_card=bool(self._own_line(provider, spelled, self.card) and self.paying
                                   and self.paying.search(spelled)),
            pays_on_public_wifi=bool(self.public_wifi and self.paying and self.public_wifi.search(spelled)
                                     and self.paying.search(spelled)),
            compared=compared,
            other_membership=self._other_membership(provider, compared, spelled))

    def _how_to(self, matched: str) -> str:
        """`matched` as a how-to question when it is nothing but an action of `bare_actions`
        (knowledge/vocabulary.yaml), punctuation aside: "Tello 充话费" asks how to top up, as "Tello 怎么充话费"
        does."""
        action = self.bare_actions.get(compact(matched))
        return HOW_TO[language_of(action)] + action if action else matched

    def _own_line(self, provider: str | None, spelled: str, pattern: re.Pattern | None, any_kind: bool = False) -> bool:
        """Whether the question speaks of a phone line of ours with `pattern`'s words: signing in to it
        ("cant login to mint", "us mobile 登陆不上"; account_words) or paying it refused ("US Mobile declines my Wise
        card"; refused_words). A carrier or business line named or chosen (with `any_kind`, any provider of ours:
        an account taken over, takeover_words, "someone took over my google voice"), one of the words, and no
        topic that is not ours ("Cricket 语音信箱登不上" is about voicemail)."""
        return bool((provider in self.lines or (any_kind and provider)) and pattern and pattern.search(spelled)
                    and not self._names_a_topic_not_ours(spelled))

    def _number_taken_over(self, provider: str | None, spelled: str) -> bool:
        """A phone number taken over with no provider named or chosen ("number 被 hijack 了 收不到 银行 OTP"): a word
        of takeover_words beside one of number_words, and no topic that is not ours."""
        return bool(provider is None and self.takeover and self.number and self.takeover.search(spelled)
                    and self.number.search(spelled) and not self._names_a_topic_not_ours(spelled))

    def _other_membership(self, provider: str | None, compared: tuple[str, ...], spelled: str) -> bool:
        """Another app's paid tier with its name not given ("api key 过期了…只能用虚拟信用卡充值"): a word of
        membership_words, no provider of ours named or chosen, and no word of a phone number, its bill or a US
        number, beside which it could be paying for the phone."""
        return bool(provider is None and not compared and self.membership and self.membership.search(spelled)
                    and not (self.phone and self.phone.search(spelled))
                    and not (self.us_number and self.us_number.search(spelled)))

    def _names_a_topic_not_ours(self, spelled: str) -> bool:
        """A word of a topic not ours that names it alone ("Cricket 语音信箱登不上" is about voicemail), whatever words
        of ours beside (`named_alone`)."""
        return bool(self.named_alone and self.named_alone.search(spelled))

    def _other_topic(self, spelled: str, provider: str | None, named: tuple[str, ...] = ()) -> str | None:
        """The topic that is not ours the question names ("mint apn 怎么设置"), unless it also has a word of money,
        of the account or of keeping a number ("tello 漫游怎么收费" is the models' to judge) in what it asks: a post
        whose every asking clause (a question mark or a question word) names the topic and has no word of ours asks
        about the topic, whatever its story says of paying ("每个月按时续费的，想问能不能屏蔽某些号码"); then a
        narrow topic, named only beside its providers, by two words together or left to the models by its own words
        of ours ("WeChat code never arrives on my google voice"). `spelled`: the question normalised, misspellings
        read; `provider`: the one named or chosen; `named`: every provider the question names, all of which must be
        the topic's ("把 T-Mobile 的号码转入 GV" is Google Voice's port-in, ours). (A narrow topic does not keep a
        line's own sign-in from being ours, `_own_line`.)"""
        found = self.other_topics.search(spelled) if self.other_topics else None
        if found is not None and not (self.ours and self.ours.search(spelled)):
            return self.topic_of[found.group()]
        if found is not None:
            asked = [c for c in CLAUSE.split(spelled) if c.strip() and self._asks(c)]
            named_in = [self.other_topics.search(c) for c in asked]
            if asked and all(named_in) and not (self.ours and any(self.ours.search(c) for c in asked)):
                return self.topic_of[named_in[0].group()]
        for topic, named_by, also, ours in self.narrow_topics:
            if ((not topic.providers or (provider in topic.providers and set(named) <= set(topic.providers)))
                    and named_by and named_by.search(spelled)
                    and (also is None or also.search(spelled)) and not (ours and ours.search(spelled))):
                return topic.name
        return None

    def _other_service(self, norm: str) -> str | None:
        """The service that is not ours the question names, unless it also speaks of a US number ("回国用中国移动，
        美国号码怎么保号" is about keeping the US number, whatever the carrier at home) or names an app beside a
        phone bill ("卡在 Netflix 上能用，充话费就被拒" is about paying for the phone). `norm`: the question,
        normalised."""
        if self.others is None or (self.us_number and self.us_number.search(norm)):
            return None
        found = self.others.find(norm)
        if found in self.apps and self.phone and self.phone.search(norm):
            return None
        return found

    def _only_follow_up_words(self, rest: str, answering: bool = False) -> bool:
        """Whether what is left beside a provider's name asks the last question again: nothing at all ("GV",
        "mint?"), or follow-up words with their fillers and at least one follow-up word ("那 Mint 呢", "is it the
        same for Mint?"). Fillers alone ask about the provider itself ("what is Mint", "Mint 怎么样"). When no
        provider was chosen (`answering`: the last answer was general, or asked which provider), the words of
        saying which one you have are follow-up words too ("I have tello", "用的是薄荷", "T-Mobile的")."""
        found = words(rest, keep_stopwords=True)
        markers = self.answer_markers if answering else self.follow_up_words
        return all(w in self.follow_up_any for w in found) and (not found or any(w in markers for w in found))

    def _corrected(self, named: tuple[str, ...], carried: str | None, rest: str) -> str | None:
        """The provider a correction names: after an answer about `carried`, one other provider named (the wrong one
        may be named too), nothing beside but words of correcting oneself, follow-up words and their fillers, at
        least one of the first, and nothing asked ("不是 Tello，是 Mint", "sorry i meant mint"). None otherwise."""
        others = [p for p in named if p != carried]
        if carried is None or len(others) != 1 or len(named) > 2 or not self.corrections:
            return None
        found = words(rest, keep_stopwords=True)
        if not any(w in self.corrections for w in found) or not all(
                w in self.corrections or w in self.follow_up_any for w in found):
            return None
        return None if self._asks(rest) else others[0]

    def _asks(self, rest: str) -> bool:
        """A question mark or a word of question_words."""
        return bool(QUESTION_MARK.search(rest) or (self.asking and self.asking.search(rest)))

    def _says_which(self, rest: str) -> bool:
        """Whether what is left beside the one provider named, in a reply to "which provider?" (or to general
        advice), asks nothing: no question mark and no word of question_words ("Mint 的 3个月套餐", "visible, the
        basic plan"). Then the reply says which provider, however it describes it."""
        return bool(self.asking) and not self._asks(rest)

    def _gibberish(self, text: str) -> bool:
        """No Chinese, and not one Latin word known to the knowledge base or to English."""
        if HAN.search(text):
            return False
        if not LATIN.search(text):
            return bool(re.sub(r"\s", "", text))  # "？？？", emoji, digits alone; "" is a bare provider name
        found = [re.sub(r"[\s&]", "", m.group()) for m in ASCII_WORD.finditer(normalise(text))]
        return not any(w in self.known_words or w in self.follow_up_any or english_zipf(w) >= self.known_zipf
                       for w in found if not w.isdigit())
