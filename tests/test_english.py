"""CommonWords says what wordfreq's zipf_frequency says about a word and the bar, from far fewer words."""

from __future__ import annotations

import random
import string

import pytest
from wordfreq import get_frequency_dict, zipf_frequency

from retrieval.serving.english import CommonWords, common_words


@pytest.fixture(scope="module")
def probes() -> list[str]:
    """Words either side of every bar tested, unknown strings, digits, and words wordfreq cuts in several tokens."""
    rng = random.Random(7)
    known = get_frequency_dict("en", "best")
    near = [w for w, f in known.items() if 2.3 <= zipf_frequency(w, "en") <= 4.0]
    alphabet = string.ascii_lowercase + string.digits
    return (rng.sample(near, 6000) + rng.sample(list(known), 3000)
            + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 10))) for _ in range(3000)]
            + [w + str(rng.randrange(10_000)) for w in rng.sample(near, 500)]
            + ["don't", "e-sim", "at&t", "wi-fi", "", "2024", "iphone15", "5g", "naïve", "中文", "recharge", "asdfgh"])


@pytest.mark.parametrize("bar", [3.0, 2.5, 3.5])
def test_the_same_answer_as_wordfreq(probes, bar):
    words = CommonWords(bar)
    assert [w for w in probes if words(w) != (zipf_frequency(w, "en") >= bar)] == []


def test_keeps_only_the_words_that_can_pass():
    words = common_words(3.0)
    words("recharge")
    assert 20_000 < len(words._frequencies) < 40_000
    assert common_words(3.0) is words


def test_a_bar_off_the_scale_is_refused():
    with pytest.raises(ValueError, match="from 0 to 8"):
        CommonWords(9)
