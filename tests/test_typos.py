"""Typos injected into development questions (measure/typos.py): seeded, one slip per long word chosen."""

from __future__ import annotations

import random
import re

from rapidfuzz.distance import OSA

from retrieval.measure.evaluate import DevQuestion
from retrieval.measure.typos import neighbour, slip, with_slips, with_typos


def question(text: str) -> DevQuestion:
    return DevQuestion(text, "en", "plain", ("google_voice/topup_steps",))


def test_a_slip_is_one_edit_inside_the_word():
    rng = random.Random(0)
    for word in ("balance", "google", "refill", "credit") * 50:
        typed = slip(word, rng)
        assert OSA.distance(word, typed) == 1 and typed[0] == word[0], (word, typed)


def test_a_neighbouring_key_is_on_the_same_row():
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm"):
        assert all(neighbour(c) in row and neighbour(c) != c for c in row)
    assert neighbour("é") == "é"


def test_one_slip_in_a_short_question_two_in_a_long_one():
    short = with_slips("google voice top up", random.Random(3))
    long = with_slips("please explain google voice credit balance limits today", random.Random(3))
    changed = lambda a, b: sum(x != y for x, y in zip(a.split(), b.split(), strict=True))  # noqa: E731
    assert changed("google voice top up", short) == 1
    assert changed("please explain google voice credit balance limits today", long) == 2
    assert with_slips("GV 怎么充值", random.Random(3)) is None  # no Latin word of five letters


def test_the_copy_is_seeded_keeps_labels_and_leaves_out_questions_without_long_words():
    questions = [question("google voice add credit"), question("GV怎么充值"), question("how do I pay")]
    first, again = with_typos(questions), with_typos(questions)
    assert first == again and len(first) == 1
    assert first[0].expect == questions[0].expect and first[0].q != questions[0].q
    assert re.fullmatch(r"[a-z ]+", first[0].q)
    assert with_typos(questions, seed=1)[0].q != first[0].q or with_typos(questions, seed=2)[0].q != first[0].q


def test_the_examples_in_the_module_hold():
    import doctest

    from retrieval.measure import typos
    assert doctest.testmod(typos).failed == 0


def test_a_slip_of_pinyin_input_is_one_character_of_the_same_sound():
    from retrieval.measure.typos import with_chinese_slip
    from retrieval.serving.spelling import pinyin_of

    rng = random.Random(0)
    for text in ("谷歌语音怎么充值", "Mint 余额会过期吗", "自动续费怎么关") * 20:
        typed = with_chinese_slip(text, rng)
        assert typed is not None and len(typed) == len(text)
        changed = [(a, b) for a, b in zip(text, typed, strict=True) if a != b]
        assert len(changed) == 1, (text, typed)
        (was, now), = changed
        assert pinyin_of(was) == pinyin_of(now)
    assert with_chinese_slip("how do I top up", rng) is None  # no Chinese word


def test_the_chinese_copy_is_seeded_and_leaves_out_questions_without_chinese_words():
    from retrieval.measure.typos import with_chinese_typos

    questions = [question("GV怎么充值"), question("google voice add credit"), question("余额")]
    first, again = with_chinese_typos(questions), with_chinese_typos(questions)
    assert first == again and [q.expect for q in first] == [questions[0].expect, questions[2].expect]
    assert all(q.q != p.q for q, p in zip(first, (questions[0], questions[2]), strict=True))
