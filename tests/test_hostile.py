"""Hostile input: any text, size, markup or broken knowledge file gets a bounded, safe and clear result."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import io
import json
import os
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from secret_formats import CARD_SEPARATORS, secretish
from secret_formats import typed_cards as any_typed_card
from timing import within

from retrieval.build.index import build_index
from retrieval.knowledge import (
    ENTRY_ID,
    LANGUAGES,
    SPECIAL_FILES,
    URL,
    KnowledgeBase,
    KnowledgeError,
    load_knowledge,
)
from retrieval.serving.answer import Kind
from retrieval.serving.assistant import Assistant
from retrieval.serving.embedder import HashingEmbedder
from retrieval.serving.safety import KINDS, MASK, fold, mask_secrets
from retrieval.serving.text import MARKDOWN_SPECIAL, escape_markdown
from retrieval.serving.understand import SCAN_FACTOR
from retrieval.settings import ROOT

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb"
# A hang guard, not a speed budget (the bench times hostile pastes: `python -m retrieval bench`). The slow
# paths these tests catch grow with the square of the input: a backtracking regex took 17 s on 100k
# characters, so minutes on REDOS_LONG, where the linear code takes ~0.2 s even on a loaded 2-core machine.
HANG_S = 60.0
LONG = 100_000
REDOS_LONG = 4 * LONG


def hostile(**options) -> settings:
    """Settings for tests that share a fixture across examples; our own timer replaces the deadline."""
    return settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                    deadline=None, **options)


# -- helpers ------------------------------------------------------------------------------------
def visible(markdown: str) -> str:
    """What Markdown would read as syntax: the text with every backslash-escaped pair taken out."""
    return re.sub(r"\\.", "", markdown, flags=re.DOTALL)


# What may stand between a card's groups as someone types it: read past, the groups are one number again.
BETWEEN_GROUPS = re.compile("[" + re.escape("".join(sorted({c for s in CARD_SEPARATORS for c in fold(s)[0]}))) + "]")


def as_read(text: str) -> str:
    """The text as a reader sees a card in it: digits folded, any separator of a typed card left out. Not every
    non-digit: the random text around a card may hold the card's digits apart ("2296470436241…á…3m", drawn by
    hypothesis), which is no card number to find."""
    return BETWEEN_GROUPS.sub("", fold(text)[0])


def strings_in(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(k)
            yield from strings_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings_in(v)


# -- strategies ---------------------------------------------------------------------------------
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a", "\u202b", "\u202e",
             "\u2066", "\u2069", "\u00ad", "\u0301", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\r\n", "\t", "\u3000",
             "\u00a0", "\u2028", "\u2029"]
EMOJI = ["🙂", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "🏳️‍🌈", "𝔾𝕍", "ﷺ", "Ｇｏｏｇｌｅ", "\U000e0041"]
MARKUP = ["<script>alert(1)</script>", "[click](javascript:alert(1))", "![x](https://evil.example/x.png)",
          "&lt;b&gt;", "&#60;script&#62;", "<img src=x onerror=alert(1)>", "**bold**", "`code`", "$x^2$", "\\",
          "\\<", "<!--", "]]>", "[a]: https://evil.example", "<https://evil.example>", "~~s~~", "# h", "| a | b |",
          "{{7*7}}", "%s%n", "'; DROP TABLE interactions; --", "</div>", "<", ">", "](", "[", "&amp;", "&"]
WORDS = ["GV", "怎么充值", "top up", "Tello", "google voice", "gv top up", "我的卡被拒", "cvv", "CVC:", "pin",
         "PIN code", "验证码", "otp", "code is", "G-", "security code", "卡背面三位", "12/27", "123", "4821",
         "2026-11-01", "646 555 1234", "?", "？？？", "AT&T", "1", " 1"]
SNIPPETS = INVISIBLE + EMOJI + MARKUP + WORDS
# Never a digit: a card glued to other digits ("14111…") is another number, not a card to find.
SEPARATORS = st.sampled_from([" ", "-", ": ", "号", "\n", ",", "/", "\u200b", "卡号"])

# st.text() leaves out lone surrogates ("\ud800"), which a Python string holds when JSON or an argument brings
# one: they crashed Assistant.ask (issue 12, item 7). These texts have them.
def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=max_size)


pieces = st.one_of(
    texts(max_size=20),  # any code point, lone surrogates included
    st.text(st.characters(categories=["Cc", "Cf", "Cn", "Co", "Mn", "So", "Zl", "Zp", "Zs"]), max_size=8),
    st.sampled_from(SNIPPETS),
    st.text(" \t\n\u3000", max_size=30),
    st.integers(0, 700).map(lambda n: "x" * n),  # reaches past the length limit now and then
)
# Every separator and digit form of issue 12 (secret_formats): not only groups of four joined by nothing,
# a space or a dash.
typed_cards = any_typed_card()


@st.composite
def questions(draw, max_pieces: int = 12) -> tuple[str, list[str]]:
    """Random text with Luhn-valid card numbers mixed in; returns the text and the cards as typed."""
    parts, cards = [], []
    for _ in range(draw(st.integers(0, max_pieces))):
        if draw(st.integers(0, 5)) == 0:
            card = draw(typed_cards)
            parts += [draw(SEPARATORS), card, draw(SEPARATORS)]
            cards.append(card)
        else:
            parts.append(draw(pieces))
    return "".join(parts), cards


odd_providers = st.one_of(
    st.none(), st.sampled_from(["", " ", "None", "null", "general", "tello", "google_voice", "TELLO", " tello",
                                "skype", "../etc/passwd", "<script>", "\x00", "🙂"]),
    texts(max_size=8), st.integers(), st.booleans(), st.just(["tello"]), st.just({"id": "tello"}))
odd_languages = st.one_of(
    st.none(), st.sampled_from(["", "zh", "en", "ZH", "En", "fr", "zh-CN", "en-US", "auto", " zh", "None", "中文"]),
    texts(max_size=5), st.integers(0, 3), st.booleans(), st.just(["zh"]))


# -- the question path --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def assistant(tmp_path_factory) -> Assistant:
    """Built once: it is read-only, and hypothesis calls it hundreds of times."""
    kb_dir = tmp_path_factory.mktemp("hostile") / "knowledge"
    shutil.copytree(FIXTURE_KB, kb_dir)
    for name in SPECIAL_FILES:  # as conftest's kb_dir: the real catalog, messages and off-topic questions
        shutil.copy(ROOT / "knowledge" / name, kb_dir / name)
    kb, embedder = load_knowledge(kb_dir), HashingEmbedder()
    return Assistant(kb, build_index(kb, embedder), embedder)


def ask(assistant: Assistant, question, provider=None, language=None):
    with within(HANG_S, f"ask({str(question)[:60]!r}..., {len(str(question))} chars)"):
        return assistant.ask(question, provider=provider, language=language)


def check(assistant: Assistant, question: str, answer, cards: list[str] = ()) -> None:
    """Every property an answer must have, whatever was typed."""
    # Only the first SCAN_FACTOR x max_chars characters are scanned (a 4 MB paste costs no more than a
    # short one); what is kept is the masked text cut to max_chars.
    scanned = question.encode("utf-8", "replace").decode("utf-8")[:assistant.max_chars * SCAN_FACTOR]
    expected = mask_secrets(scanned).text.strip()
    too_long = len(question.encode("utf-8", "replace").decode("utf-8").strip()) > assistant.max_chars
    assert answer.question == expected[:assistant.max_chars]
    assert len(answer.question) <= assistant.max_chars
    truncated = assistant.kb.message("truncated", answer.language, limit=assistant.max_chars)
    assert (truncated in answer.notices) == too_long
    assert answer.language in LANGUAGES
    if answer.kind in (Kind.DECLINE, Kind.EMPTY):
        assert not answer.answered
    if not expected:
        assert answer.kind is Kind.EMPTY
    data = answer.to_json()
    dumped = json.dumps(data, ensure_ascii=False)
    assert json.loads(dumped) == data
    for card in cards:
        digits = re.sub(r"[^0-9]", "", fold(card)[0])
        for text in strings_in(data):
            assert card not in text and card.replace(" ", "").replace("-", "") not in text, (card, text)
            assert digits not in as_read(text), (card, text)
    shown = visible(escape_markdown(answer.question))
    assert "<" not in shown and "](" not in shown and "&" not in shown


@hostile(max_examples=200)
@given(typed=questions())
def test_any_text_gets_a_well_formed_answer(assistant, typed):
    question, cards = typed
    check(assistant, question, ask(assistant, question), cards)


# The same properties once through the real model and its tokenizer (the hashing embedder above never
# tokenises): few examples, so that the four stay well under a minute.
REAL_EXAMPLES = 40


@pytest.mark.model
@hostile(max_examples=REAL_EXAMPLES, phases=[Phase.explicit, Phase.generate])
@given(typed=questions())
@example(typed=("GV怎么充值 \ud800 4111\u30001111\u30001111\u30001111 <s></s><pad><unk><mask>",
                ["4111\u30001111\u30001111\u30001111"]))
@example(typed=("\u0301\u200d\ufeff" + "🙂" * 600 + "\U000e0041", []))
# Found by hypothesis: the text before the card holds the card's digits apart, which is no card to mask.
@example(typed=("229647043624174á\U000e2d47Ì\U000d657f3m\U000f4a3cúþ艸ø¼i\u200b２２９６\t４７０４\t３６２４\t１７４３/",
                ["２２９６\t４７０４\t３６２４\t１７４３"]))
def test_any_text_gets_a_well_formed_answer_from_the_real_model(real_assistant, typed):
    question, cards = typed
    check(real_assistant, question, ask(real_assistant, question), cards)


@pytest.mark.parametrize("typed, cards", [
    ("4111 1111 1111 1111 12/27", ["4111 1111 1111 1111"]),  # the expiry date right after the number
    ("4111 1111 1111 1111 123", ["4111 1111 1111 1111"]),    # the security code, without its keyword
    ("卡号 4111-1111-1111-1111 有效期 12 27", ["4111-1111-1111-1111"]),
    ("pin 1234 378282246310005", ["378282246310005"]),       # a code just before the number
    ("VISA-4111111111111111", ["4111111111111111"]),
    ("12-4111111111111111", ["4111111111111111"]),
    ("5500 0000 0000 0004 4111 1111 1111 1111", ["5500 0000 0000 0004", "4111 1111 1111 1111"]),
])
def test_a_card_next_to_other_numbers_is_still_masked(assistant, typed, cards):
    question = f"GV怎么充值 {typed}"
    answer = ask(assistant, question)
    assert "card" in assistant.understand(question).secrets
    check(assistant, question, answer, cards)


@hostile(max_examples=150)
@given(question=st.one_of(questions().map(lambda t: t[0]), st.none(), st.integers(), st.just(b"GV \xff"),
                          st.floats(allow_nan=True)),
       provider=odd_providers, language=odd_languages)
def test_odd_provider_and_language_values_never_raise(assistant, question, provider, language):
    odd_values_answered(assistant, question, provider, language)


def odd_values_answered(assistant: Assistant, question, provider, language) -> None:
    answer = ask(assistant, question, provider, language)
    assert answer.language in LANGUAGES
    assert answer.provider is None or answer.provider in assistant.kb.providers
    assert not (answer.kind in (Kind.DECLINE, Kind.EMPTY) and answer.answered)
    json.dumps(answer.to_json(), ensure_ascii=False)


@pytest.mark.model
@hostile(max_examples=REAL_EXAMPLES, phases=[Phase.explicit, Phase.generate])
@given(question=st.one_of(questions().map(lambda t: t[0]), st.none(), st.integers(), st.just(b"GV \xff")),
       provider=odd_providers, language=odd_languages)
def test_odd_provider_and_language_values_never_raise_with_the_real_model(real_assistant, question, provider,
                                                                           language):
    odd_values_answered(real_assistant, question, provider, language)


# -- the command line, with the same odd values ---------------------------------------------------
@pytest.fixture(scope="module")
def cli_environment(tmp_path_factory) -> dict[str, str]:
    """`python -m retrieval ask` on the fixture knowledge base with the hashing model, its index kept."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(FIXTURE_KB, root / "knowledge")
    for name in SPECIAL_FILES:
        shutil.copy(ROOT / "knowledge" / name, root / "knowledge" / name)
    return {"ASSISTANT_KNOWLEDGE_DIR": str(root / "knowledge"), "ASSISTANT_MODEL": "hashing",
            "ASSISTANT_DATA_DIR": str(root / "var")}


ODD_OPTION_VALUES = ["", " ", "-", "--", "-x", "--jsonl", "None", "null", "tello", "TELLO", " tello", "google_voice",
                     "zh", "ZH", "en", "en-US", "auto", "中文", "\x00", "\ud800", "\udcff", "🙂", "../etc/passwd"]
option_values = st.one_of(st.none(), st.sampled_from(ODD_OPTION_VALUES), texts(max_size=8))


@hostile(max_examples=40)
@given(provider=option_values, language=option_values,
       words=st.lists(st.one_of(st.sampled_from(["gv", "top", "up", "怎么充值", "4111\u30001111\u30001111\u30001111"]),
                                texts(max_size=10)), max_size=4))
@example(provider="\ud800", language=None, words=["gv"])
@example(provider=None, language="\udcff", words=[])
@example(provider="tello", language="en", words=["\ud83d", "top", "up"])
def test_odd_provider_and_language_options_never_crash_the_command_line(cli_environment, provider, language,
                                                                        words):
    """The command line's own parsing of --provider and --language (which crashed on the values
    Assistant.ask took): an answer, or a refusal on standard error with status 2; never a traceback."""
    from retrieval.cli import main

    argv = ["ask", *(["--provider", provider] if provider is not None else []),
            *(["--language", language] if language is not None else []), "--", *words]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        for name, value in cli_environment.items():
            mp.setenv(name, value)
        try:
            code = main(argv, out=out, stdin=io.BytesIO("GV怎么充值 \udcff".encode("utf-8", "surrogateescape")))
        except SystemExit as exc:  # argparse refusing a value, as it does on a real command line
            code = exc.code
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert provider is None or provider in ("tello", "google_voice")
        assert language in (None, *LANGUAGES) and out.getvalue().strip()
        out.getvalue().encode("utf-8")  # what reaches a real terminal must be UTF-8
    else:
        assert code == 2 and out.getvalue() == "" and "error" in err.getvalue(), (code, err.getvalue())


@pytest.mark.parametrize("options, status, said", [
    ([b"--provider", b"\xff"], 2, "unknown provider '\\udcff'"),
    ([b"--language", b"\xed\xa0\x80"], 2, "invalid choice"),
    ([b"--provider", b""], 2, "unknown provider ''"),
    ([b"--provider", b"tello", b"--language", b"en", b"--", b"-\xff"], 0, ""),
])
def test_the_real_command_line_takes_bytes_that_are_not_utf8_in_its_options(cli_environment, options, status, said):
    result = subprocess.run([sys.executable, "-m", "retrieval", "ask", *options, b"top", b"up"], capture_output=True,
                            cwd=ROOT, env={**os.environ, **cli_environment}, timeout=300)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == status and "Traceback" not in stderr and said in stderr, stderr[-2000:]
    assert bool(result.stdout.strip()) == (status == 0)


@hostile(max_examples=60)
@given(question=st.text(st.characters(categories=["Zs", "Zl", "Zp", "Cc"]).filter(str.isspace), max_size=50),
       provider=st.sampled_from([None, "tello", "google_voice"]))
def test_empty_or_whitespace_only_is_an_empty_answer(assistant, question, provider):
    empty_answered(assistant, question, provider)


def empty_answered(assistant: Assistant, question: str, provider) -> None:
    answer = ask(assistant, question, provider)
    assert answer.kind is Kind.EMPTY and not answer.answered and answer.question == ""
    assert answer.markdown == assistant.kb.message("empty_question", answer.language)


@pytest.mark.model
@hostile(max_examples=REAL_EXAMPLES, phases=[Phase.explicit, Phase.generate])
@given(question=st.text(st.characters(categories=["Zs", "Zl", "Zp", "Cc"]).filter(str.isspace), max_size=50),
       provider=st.sampled_from([None, "tello", "google_voice"]))
def test_empty_or_whitespace_only_is_an_empty_answer_from_the_real_model(real_assistant, question, provider):
    empty_answered(real_assistant, question, provider)


# Shrinking a timing failure means re-running many slow examples; the first failure says enough.
@hostile(max_examples=12, phases=[Phase.explicit, Phase.generate])
@given(head=questions(max_pieces=4).map(lambda t: t[0]),
       filler=st.one_of(st.sampled_from([" ", "\t", "\u3000", "1 ", "a", "充", "<", "🙂", "\u200b", "pin ",
                                         "4111 1111 1111 1111 ", "[x](y)"]), st.text(min_size=1, max_size=6)),
       tail=questions(max_pieces=3).map(lambda t: t[0]))
@example(head="PIN", filler=" ", tail="1234")
@example(head="cvv", filler="\u3000", tail="")
@example(head="验证码", filler="\n", tail="482913")
@example(head="GV怎么充值", filler="1 ", tail="")
def test_a_100k_character_question_is_answered_from_its_first_characters_only(assistant, head, filler, tail):
    """Bounded work, as behaviour: nothing past the first SCAN_FACTOR x max_chars characters changes the
    answer, but for the notice that the question was cut."""
    long_question_answered(assistant, head, filler, tail)


def long_question_answered(assistant: Assistant, head: str, filler: str, tail: str) -> None:
    body = (filler * (LONG // len(filler) + 1))[:max(0, LONG - len(head) - len(tail))]
    question = head + body + tail
    answer = ask(assistant, question)
    check(assistant, question, answer)
    scanned = ask(assistant, question[: assistant.max_chars * SCAN_FACTOR])
    assert dataclasses.replace(answer, notices=()) == dataclasses.replace(scanned, notices=())


@pytest.mark.model
@hostile(max_examples=8, phases=[Phase.explicit, Phase.generate])
@given(head=questions(max_pieces=4).map(lambda t: t[0]),
       filler=st.one_of(st.sampled_from(["\u3000", "1 ", "充", "\ud83d", "<s>"]), texts(max_size=6).filter(bool)),
       tail=questions(max_pieces=3).map(lambda t: t[0]))
@example(head="验证码", filler="\n", tail="482913")
def test_a_100k_character_question_is_answered_in_bounded_time_by_the_real_model(real_assistant, head, filler,
                                                                                 tail):
    long_question_answered(real_assistant, head, filler, tail)


@hostile(max_examples=120)
@given(parts=st.lists(st.one_of(st.sampled_from(MARKUP), st.text(max_size=10)), min_size=1, max_size=8))
def test_markup_typed_by_the_user_is_shown_as_text(assistant, parts):
    question = "".join(parts)
    answer = ask(assistant, question)
    shown = visible(escape_markdown(answer.question))
    assert "<" not in shown and "](" not in shown and "&" not in shown


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_notice_exactly_when_longer_than_the_limit(assistant, extra):
    # A masked card keeps its length and whitespace around the text does not count.
    core = ("4111 1111 1111 1111 " + "a" * assistant.max_chars)[:assistant.max_chars + extra]
    answer = ask(assistant, "  \n" + core + " \t")
    truncated = assistant.kb.message("truncated", answer.language, limit=assistant.max_chars)
    assert (truncated in answer.notices) == (extra > 0)
    assert len(answer.question) == min(len(core.rstrip()), assistant.max_chars)


# -- escape_markdown and mask_secrets: identities -----------------------------------------------
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.lists(st.sampled_from(MARKUP + EMOJI + INVISIBLE)).map("".join)))
@example(text="")
@example(text="\\")
@example(text="🙂")
@example(text="a")
def test_escaped_markdown_unescapes_to_the_input(text):
    escaped = escape_markdown(text)
    assert re.sub(r"\\(.)", r"\1", escaped, flags=re.DOTALL) == text
    assert not MARKDOWN_SPECIAL.search(visible(escaped))
    assert len(escaped) == len(text) + len(MARKDOWN_SPECIAL.findall(text))


def test_escaping_a_large_text_is_linear():
    text = "".join(MARKUP) * (REDOS_LONG // len("".join(MARKUP)))
    with within(HANG_S, "escape_markdown"):
        assert visible(escape_markdown(text)).count("<") == 0


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(secretish, texts(max_size=40)))
@example(text="pin 1234 378282246310005")
@example(text="4111 1111 1111 1111 123")
def test_masking_twice_is_masking_once(text):
    once = mask_secrets(text)
    assert mask_secrets(once.text).text == once.text


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(secretish, texts(max_size=40)))
def test_masking_keeps_length_and_every_non_digit(text):
    masked = mask_secrets(text)
    assert len(masked.text) == len(text)
    for before, after in zip(text, masked.text, strict=True):
        # A password is masked whole, letters too; everything else only digit by digit.
        assert after == before or (re.fullmatch(r"\d", before) or "password" in masked.found) and after == MASK
    assert set(masked.found) <= {"card", "security_code", "verification_code", "password", "ssn"} == set(KINDS)
    assert bool(masked.found) == (masked.text != text)


@pytest.mark.parametrize("keyword, gap", [("pin", " "), ("PIN code", "\t"), ("cvv", "\u3000"), ("code", " "),
                                          ("验证码", "\n"), ("security code", " "), ("G-", " "), ("4111", " ")])
def test_masking_a_keyword_followed_by_much_whitespace_is_linear(keyword, gap):
    with within(HANG_S, f"mask_secrets({keyword!r} + {REDOS_LONG} x {gap!r})"):
        mask_secrets(keyword + gap * REDOS_LONG + "x")


@pytest.mark.parametrize("pattern", ["验证码", "4111 1111 1111 1111 12/27 ", "482913 is your ", "1 - ", "12/", "密码",
                                     "password: ", "code: 12 ", "g-1", "123-45-", "ﷺ", "１", "\u200b", "是您的"])
def test_masking_a_long_repetition_of_any_secret_shape_is_fast(pattern):
    text = (pattern * (LONG // len(pattern) + 1))[:LONG]
    with within(HANG_S, f"mask_secrets({LONG} characters of {pattern!r})"):
        assert len(mask_secrets(text).text) == LONG


# -- broken knowledge files ---------------------------------------------------------------------
def shipped_messages() -> dict[str, dict[str, str]]:
    return yaml.safe_load((ROOT / "knowledge" / "messages.yaml").read_text(encoding="utf-8"))["messages"]


def placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:  # "{url" would make .format() fail when the message is shown
        return {f"<cannot be formatted: {exc}>"}


def assert_invariants(kb: KnowledgeBase) -> None:
    """What a knowledge base that loaded promises the assistant."""
    ids = [e.id for e in kb.entries]
    assert len(ids) == len(set(ids)) and set(kb.by_id) == set(ids)
    for e in kb.entries:
        assert ENTRY_ID.match(e.id) and e.provider in kb.providers and e.topic in kb.topics
        for lang in LANGUAGES:
            assert e.title[lang] and e.answer[lang] and e.questions[lang] and all(e.questions[lang])
        assert set(e.steps) in (set(), set(LANGUAGES)) and len({len(s) for s in e.steps.values()}) <= 1
        assert e.links and all(link.title and URL.match(link.url) for link in e.links)
        assert set(e.related) <= set(ids) and isinstance(e.checked, dt.date) and e.checked != dt.date.min
    for p in kb.providers.values():
        assert set(p.name) == set(LANGUAGES) and URL.match(p.support_url) and p.id in kb.provider_ids
    needed = shipped_messages()
    missing = sorted(set(needed) - set(kb.messages))
    assert not missing, f"loaded without messages the app uses: {missing}"
    for key, texts in kb.messages.items():
        assert set(texts) == set(LANGUAGES), key
        # "keep them identical in both languages" (messages.yaml); a lone "{" or a placeholder the code
        # does not fill would make .format() fail when the message is shown
        assert placeholders(texts["zh"]) == placeholders(texts["en"]), key
        if key in needed:
            assert placeholders(texts["en"]) <= placeholders(needed[key]["en"]), key


def assert_loads_or_names_the_file(directory: Path) -> KnowledgeBase | None:
    """The loader's own error, naming a file of the folder, or a knowledge base that keeps its promises."""
    names = {p.name for p in directory.glob("*.yaml")}
    try:
        kb = load_knowledge(directory)
    except KnowledgeError as exc:
        assert exc.errors
        for error in exc.errors:
            assert any(error.startswith(f"{name}: ") for name in names), error
        return None
    assert_invariants(kb)
    return kb


@contextmanager
def replaced(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.fixture
def real_dir(tmp_path: Path) -> Path:
    """A slice of the real knowledge base: catalog, messages, off-topic questions, general guide, one provider."""
    target = tmp_path / "real"
    target.mkdir()
    for name in (*SPECIAL_FILES, "general.yaml", "tello.yaml"):
        shutil.copy(ROOT / "knowledge" / name, target / name)
    return target


FIXTURE_FILES = [*SPECIAL_FILES, "general.yaml", "google_voice.yaml", "tello.yaml"]

yaml_tokens = st.lists(st.sampled_from([
    "\n", "  ", "    ", "- ", ": ", "? ", "{", "}", "[", "]", ", ", "&a ", "*a", "*b", "!!int ", "!!bool ",
    "!!float ", "!!timestamp ", "!!binary ", "!!python/object:os.system ", "!!str ", "!!set ", "!!omap ", "<<: ",
    "|\n", ">-\n", "'", '"', "# ", "\t", "%YAML 1.1\n", "---\n", "...\n", "id", "provider", "entries", "topic",
    "checked", "2026-02-30", "2026-11-29", "zh", "en", "title", "questions", "answer", "steps", "do", "links",
    "url", "https://x.example", "sources", "related", "messages", "topics", "providers", "needs_provider", "true",
    "null", "~", "1e999", ".nan", "0x1F", "abc", "充值", "\ufeff", "\x00", "{x", "}",
]), max_size=40).map("".join)
yaml_lines = st.from_regex(
    r"(?:[ ]{0,4}(?:- )?(?:[a-z_]{1,10}|\"[^\"\n]{0,8}\"?|'[^'\n]{0,8}'?)?(?::[ ]?)?"
    r"(?:[&*!][a-z!/]{0,8} ?)?(?:[\[\]{},|>]|[0-9:-]{1,10}|[a-z]{0,6})?\n){0,12}", fullmatch=True)
SCHEMA_WORDS = ["id", "provider", "entries", "topic", "checked", "title", "questions", "answer", "steps", "do",
                "expect", "if_not", "links", "url", "sources", "related", "zh", "en", "name", "kind", "status",
                "aliases", "support_url", "messages", "topics", "providers", "required_topics", "needs_provider",
                "general", "tello", "topup_steps", "gen-topup", "https://x.example", "{provider}", "{"]
leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=12),
                   st.dates(), st.sampled_from(SCHEMA_WORDS))
keys = st.one_of(st.sampled_from(SCHEMA_WORDS), st.text(max_size=6), st.integers(), st.booleans(), st.none())
values = st.recursive(leaves, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                      st.dictionaries(keys, kids, max_size=4)), max_leaves=12)
DELETE = object()


def dump(value) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False).encode("utf-8")


def node_paths(doc, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in items:
        yield from node_paths(child, (*prefix, key))


def with_node(doc, path: tuple, value):
    """`doc` with the node at `path` replaced by `value`, or removed when value is DELETE."""
    if not path:
        return {} if value is DELETE else value
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@hostile(max_examples=25)
@pytest.mark.parametrize("name", FIXTURE_FILES)
@given(data=st.data())
def test_a_truncated_file_loads_or_names_the_file(kb_dir, name, data):
    path = kb_dir / name
    original = path.read_bytes()
    cut = data.draw(st.integers(0, len(original) - 1), label="cut")
    with replaced(path, original[:cut]):
        assert_loads_or_names_the_file(kb_dir)


@hostile(max_examples=6)
@pytest.mark.parametrize("name", ["general.yaml", "tello.yaml"])
@given(data=st.data())
def test_a_truncated_real_file_loads_or_names_the_file(real_dir, name, data):
    path = real_dir / name
    original = path.read_bytes()
    cut = data.draw(st.integers(0, len(original) - 1), label="cut")
    with replaced(path, original[:cut]):
        assert_loads_or_names_the_file(real_dir)


@hostile(max_examples=25)
@pytest.mark.parametrize("name", FIXTURE_FILES)
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), yaml_tokens.map(str.encode),
                         yaml_lines.map(str.encode), values.map(dump)))
def test_a_file_replaced_by_junk_names_the_file(kb_dir, name, content):
    with replaced(kb_dir / name, content):
        assert_loads_or_names_the_file(kb_dir)


@hostile(max_examples=30)
@pytest.mark.parametrize("name", FIXTURE_FILES)
@given(where=st.integers(0, 10**6), value=st.one_of(st.just(DELETE), values))
def test_one_node_of_a_file_replaced_loads_or_names_the_file(kb_dir, name, where, value):
    path = kb_dir / name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    paths = list(node_paths(doc))
    with replaced(path, dump(with_node(doc, paths[where % len(paths)], value))):
        assert_loads_or_names_the_file(kb_dir)


@pytest.mark.parametrize("line, problem", [
    ("    checked: 2026-02-30", "2026-02-30"),          # a date that does not exist
    ("    checked: !!timestamp 2026-13-01", "2026-13-01"),
    ("    topic: !!int topup", "topup"),
    ("    topic: !!bool maybe", "maybe"),
    ("    topic: !!float x", "x"),
    ("    topic: " + "[" * 3000, "tello.yaml"),         # nesting deeper than the parser's recursion limit
])
def test_a_value_yaml_itself_cannot_build_names_the_file(kb_dir, line, problem):
    path = kb_dir / "tello.yaml"
    text = re.sub(r"^    checked: .*$", line, path.read_text(encoding="utf-8"), count=1, flags=re.M)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(kb_dir)
    assert all(e.startswith("tello.yaml: ") for e in info.value.errors), info.value.errors
    assert problem in " ".join(info.value.errors)


@pytest.mark.parametrize("name, path, value", [
    ("catalog.yaml", ("topics",), 5),                    # a number where the list of topics should be
    ("tello.yaml", ("entries", 0, "topic"), ["topup_steps"]),  # a list where one topic id should be
    ("messages.yaml", (), {"message": {}}),             # a misspelt top-level key
    ("out_of_scope.yaml", (), {"out_of_scop": {}}),
])
def test_a_value_of_the_wrong_shape_names_the_file(kb_dir, name, path, value):
    doc = yaml.safe_load((kb_dir / name).read_text(encoding="utf-8"))
    (kb_dir / name).write_bytes(dump(with_node(doc, path, value)))
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(kb_dir)
    assert any(e.startswith(f"{name}: ") for e in info.value.errors), info.value.errors


def test_every_message_the_app_shows_is_required_at_load(kb_dir):
    path = kb_dir / "messages.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    accepted = []
    for key in sorted(doc["messages"]):
        path.write_bytes(dump(with_node(doc, ("messages", key), DELETE)))
        try:
            load_knowledge(kb_dir)
        except KnowledgeError as exc:
            assert any(e.startswith("messages.yaml: ") and key in e for e in exc.errors), exc.errors
        else:
            accepted.append(key)
    assert accepted == [], f"loaded without these messages, so the app would fail later: {accepted}"


def test_a_message_with_a_broken_placeholder_is_refused_at_load(kb_dir):
    path = kb_dir / "messages.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["messages"]["decline_support"]["en"] = "See {url"
    path.write_bytes(dump(doc))
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(kb_dir)
    assert any(e.startswith("messages.yaml: decline_support") for e in info.value.errors), info.value.errors
