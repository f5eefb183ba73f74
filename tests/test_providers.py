"""Providers are recognised from aliases in any spelling the users write."""

import pytest

from retrieval.providers import ProviderFinder


@pytest.fixture
def finder(tiny_kb):
    return ProviderFinder(tiny_kb)


@pytest.mark.parametrize("question, provider", [
    ("GV怎么充值", "google_voice"), ("gv top up", "google_voice"), ("谷歌语音加余额", "google_voice"),
    ("Google Voice 充值", "google_voice"), ("googlevoice credit", "google_voice"),
    ("goolge voice credit", "google_voice"), ("GOOGLE-VOICE", "google_voice"), ("谷歌語音", "google_voice"),
    ("Tello Moblie plan", "tello"), ("Tello-Mobile plan", "tello"), ("how do I use tello", "tello"),
])
def test_found(finder, question, provider):
    assert finder.find(question) == provider


@pytest.mark.parametrize("question", ["how do I top up", "gravy recipe", "give me a hello", "", "？？？"])
def test_not_found(finder, question):
    assert finder.find(question) is None


def test_first_named_wins(finder):
    assert finder.find("tello or google voice?") == "tello"
