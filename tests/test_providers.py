"""Providers are recognised from aliases in any spelling the users write."""

import pytest

from retrieval.serving.providers import ProviderFinder


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


@pytest.mark.parametrize("question", ["how do I top up", "gravy recipe", "give me a hello", "", "？？？",
                                      "voice mail is full", "google drive storage", "a voicemail"])
def test_not_found(finder, question):
    assert finder.find(question) is None


def test_first_named_wins(finder):
    assert finder.find("tello or google voice?") == "tello"


@pytest.fixture(scope="module")
def real_finder():
    from retrieval.knowledge import load_knowledge
    from retrieval.settings import ROOT

    return ProviderFinder(load_knowledge(ROOT / "knowledge"))


@pytest.mark.parametrize("question, provider", [
    ("goolge voice 怎么加余额", "google_voice"), ("tmobile refill", "t_mobile_prepaid"),
    ("T Mobile 预付费", "t_mobile_prepaid"), ("T-Mo autopay", "t_mobile_prepaid"), ("mnit mobile renew", "mint_mobile"),
    ("verizion prepaid balance", "verizon_prepaid"), ("cricekt bill", "cricket"), ("AT&T 预付", "att_prepaid"),
    ("ATT prepaid", "att_prepaid"), ("at & t prepaid", "att_prepaid"), ("薄荷卡续费", "mint_mobile"),
    ("蟋蟀交话费", "cricket"), ("谷歌語音", "google_voice"), ("visable autopay", "visible"),
    ("h20 wireless", "h2o_wireless"), ("萊卡的餘額", "lycamobile"),
    # the nicknames of Chinese forums: 狗V for GV, A家 and V家 beside T家
    ("狗V里的余额会过期吗", "google_voice"), ("狗歌语音登录不进去", "google_voice"),
    ("A家预付卡的账户密码忘了", "att_prepaid"),
    ("大V家的预付费什么时候到期", "verizon_prepaid"), ("V家预付费怎么防止被换卡", "verizon_prepaid"),
    # RC for RingCentral: every question of the opened sets naming "RC" alone meant RingCentral (16 of 16)
    ("RC年付合同怎么关自动续约", "ringcentral"), ("RC says payment failed", "ringcentral"),
])
def test_real_aliases(real_finder, question, provider):
    assert real_finder.find(question) == provider


@pytest.mark.parametrize("question", [
    "pay as you go phone plans", "how do I disable autopay", "my mobile data is slow", "a prepaid card was declined",
    "my voice mail is full", "how do I top up", "is it safe to pay online",
])
def test_ordinary_words_are_not_providers(real_finder, question):
    assert real_finder.find(question) is None


@pytest.mark.parametrize("question, name, provider", [
    # A name's words stand side by side: "lycamobile" and "23" with a sentence between are no "lycamobile us"
    ("lycamobile怎么关自动续费 已经回国两个月了，每个月还是自动扣我$23，app里找不到关的地方", "lycamobile",
     "lycamobile"),
    ("Ultra 的 PayGo 方案儲值後餘額多久會過期", "ultra", "ultra_mobile"),
    ("谷歌语音充值问题找谁？google 客服电话打过去说不管 voice", "谷歌语音", "google_voice"),
])
def test_a_name_never_spans_other_words(real_finder, question, name, provider):
    from retrieval.serving.text import normalise

    norm = normalise(question)
    spans = {norm[m.start:m.end] for m in real_finder.find_all(question)}
    assert spans == {name} and real_finder.find(question) == provider
    # what is left still holds the question
    assert "自动续费" in real_finder.strip(question) or "余额" in real_finder.strip(question) \
        or "充值问题" in real_finder.strip(question)


@pytest.mark.parametrize(("question", "left"), [
    ("accidently bought 50$ of voice credit insted of 10", "accidently bought 50$ of voice credit insted of 10"),
    ("iPhone上的Voice app里面找不到加余额的按钮", "iphone上的voice app里面找不到加余额的按钮"),
    ("google voice credit 怎么退", "credit 怎么退"),  # the name is taken out, the hint's other word stays
])
def test_a_hint_chooses_the_provider_and_stays_in_the_question(real_finder, question, left):
    """knowledge/google_voice.yaml: `hints` ("voice credit", "voice app") say which provider a question is about
    without being its name: the phrasings that use them are read as before."""
    assert real_finder.find(question) == "google_voice"
    assert real_finder.strip(question) == left


@pytest.mark.parametrize("question", [
    "用visa家里人帮我付", "我的 Nokia家里有两台", "谷歌voicemail 怎么设置",
])
def test_a_mixed_name_is_no_part_of_a_latin_word(real_finder, question):
    """A name of Latin letters and Chinese ("A家", "谷歌voice") is not read inside a longer Latin word."""
    assert real_finder.find(question) is None


@pytest.mark.parametrize("question, provider", [
    ("t-mobile prepaid refill", "t_mobile_prepaid"), ("google voice 充值", "google_voice"),
    ("at and t prepaid", "att_prepaid"), ("Lycamobile US top up", "lycamobile"),
])
def test_a_name_of_several_words_is_still_found(real_finder, question, provider):
    assert real_finder.find(question) == provider
