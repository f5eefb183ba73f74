"""Secrets typed into the chat are found and masked; ordinary numbers are left alone."""

import re
import string
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from secret_formats import CARD_SEPARATORS, FULL_WIDTH, typed_cards

from retrieval.serving.safety import MASK, fold, luhn_ok, mask_secrets

CARDS = ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000 0000 0004",
         "378282246310005", "6212 3456 7890 1234 569"]


@pytest.mark.parametrize("card", CARDS)
def test_luhn_valid_cards_masked(card):
    masked = mask_secrets(f"我的卡号是{card}，为什么被拒")
    assert "card" in masked.found
    assert not any(ch.isdigit() for ch in masked.text)
    assert masked.text.startswith("我的卡号是") and masked.text.endswith("为什么被拒")


@pytest.mark.parametrize("text, kind", [
    ("cvv 123", "security_code"), ("CVC: 4321", "security_code"), ("安全码是 123", "security_code"),
    ("验证码 482913", "verification_code"), ("Your code is G-482913", "verification_code"),
    ("驗證碼：5521", "verification_code"), ("verification code 118822", "verification_code"),
])
def test_codes_masked(text, kind):
    masked = mask_secrets(text)
    assert kind in masked.found and not any(ch.isdigit() for ch in masked.text)


@pytest.mark.parametrize("text", [
    "I paid 25 dollars on 2026-11-01", "call 646 555 1234", "余额还有 70 美元", "4111 1111 1111 1112",
    "order 1234567890123", "text ADD10PAYG to 800", "dial *233",
    "6212 3456 7890 1234 563",  # 19 digits that fail the Luhn check: no card
    "2026/11/01 12:30", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14", "zip code 10001", "area code 646",
    "the verification code never came in 2026", "password for google voice", "my password is wrong",
    "I forgot my password, what now?", "密码忘了怎么办", "call 1-800-555-0199", "ref 1.234.567.890",
])
def test_ordinary_numbers_kept(text):
    masked = mask_secrets(text)
    assert masked.text == text and not masked.found


def test_luhn():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_masking_is_idempotent():
    once = mask_secrets("card 4111 1111 1111 1111 cvv 123").text
    assert mask_secrets(once).text == once


# -- every format the hostile probe found (issue 12, item 1) --------------------------------------
def digits_masked(typed: str) -> str:
    return "".join(MASK if ch.isdigit() else ch for ch in typed)


@pytest.mark.parametrize("separator", CARD_SEPARATORS)
@pytest.mark.parametrize("groups", [["4111", "1111", "1111", "1111"], ["3782", "822463", "10005"],
                                    ["6212", "3456", "7890", "1234", "569"]])
def test_a_card_with_any_separator_is_masked_and_the_separators_kept(separator, groups):
    card = separator.join(groups)
    masked = mask_secrets(f"我的卡号是{card}，为什么被拒")
    assert masked.text == f"我的卡号是{digits_masked(card)}，为什么被拒"
    assert masked.found == ("card",)


@pytest.mark.parametrize("card", ["４１１１ １１１１ １１１１ １１１１", "４１１１１１１１１１１１１１１１",
                                  "4111 １１１１ 1111 １１１１", "٤١١١ ١١١١ ١١١١ ١١١١"])
def test_a_card_in_full_width_or_other_digits_is_masked(card):
    masked = mask_secrets(f"card {card} declined")
    assert masked.text == f"card {digits_masked(card)} declined" and masked.found == ("card",)


@pytest.mark.parametrize("typed, expected, kind", [
    ("验证码是：482913", "验证码是：••••••", "verification_code"),
    ("482913是您的验证码", "••••••是您的验证码", "verification_code"),
    ("【Google】482913 是你的验证码", "【Google】•••••• 是你的验证码", "verification_code"),
    ("482913 is your verification code", "•••••• is your verification code", "verification_code"),
    ("G-482913 is your Google Voice verification code", "G-•••••• is your Google Voice verification code",
     "verification_code"),
    ("my cvv is: 123", "my cvv is: •••", "security_code"),
    ("CVV码 123", "CVV码 •••", "security_code"),
    ("背面 123", "背面 •••", "security_code"),
    ("123 is my cvv", "••• is my cvv", "security_code"),
    ("g-123456", "g-••••••", "verification_code"),
    ("code: 48 29 13", "code: •• •• ••", "verification_code"),
    ("验证码 4829 13", "验证码 •••• ••", "verification_code"),
    ("验证码：４８２９１３", "验证码：••••••", "verification_code"),
    ("ｃｏｄｅ ４８２９１３", "ｃｏｄｅ ••••••", "verification_code"),
    ("密码 123456", "密码 ••••••", "password"),
    ("我的密码是abc123，登不上", "我的密码是••••••，登不上", "password"),
    ("password: hunter2", "password: •••••••", "password"),
    ("my password is hunter2.", "my password is •••••••.", "password"),
    ("Password = s3cr3t!", "Password = ••••••!", "password"),
    ("password: reset", "password: •••••", "password"),
    ("my SSN is 123-45-6789", "my SSN is •••-••-••••", "ssn"),
    ("ssn 123 45 6789", "ssn ••• •• ••••", "ssn"),
    ("社会安全号码 123456789", "社会安全号码 •••••••••", "ssn"),
    ("card 4111 1111 1111 1111 12/27", "card •••• •••• •••• •••• ••/••", "card"),
    ("卡号 4111-1111-1111-1111 有效期 12 27", "卡号 ••••-••••-••••-•••• 有效期 •• ••", "card"),
    ("4111111111111111 exp 12/2027 cvv 123", "•••••••••••••••• exp ••/•••• cvv •••", "card"),
    ("4111 1111 1111 1111, 12/27, 123", "•••• •••• •••• ••••, ••/••, •••", "card"),
])
def test_each_listed_format_is_masked_and_nothing_else(typed, expected, kind):
    masked = mask_secrets(typed)
    assert masked.text == expected and kind in masked.found


def test_a_card_straight_before_a_phone_number_leaves_the_phone_number():
    assert mask_secrets("4111 1111 1111 1111 646 555 1234").text == "•••• •••• •••• •••• 646 555 1234"


def test_a_stored_json_document_is_masked_like_the_text_in_it():
    """The store masks a conversation as JSON, where a line break is the two characters \\n."""
    import json

    question = "卡号\n4111\n1111\n1111\n1111\t验证码\t482913"
    assert json.loads(mask_secrets(json.dumps({"q": question}, ensure_ascii=False)).text) == \
        {"q": mask_secrets(question).text}


# -- properties ---------------------------------------------------------------------------------
# Around the card: text with no digit and no Latin letter, so that nothing else in it is a secret.
around = st.text(st.characters(exclude_categories=["Nd", "Cs"], exclude_characters=string.ascii_letters),
                 max_size=12).filter(lambda t: not re.search(r"[0-9]", fold(t)[0]))
gap = st.sampled_from([" ", "：", "是", "，", "\n", "\u3000", " (", "] "])


@settings(max_examples=400, deadline=None)
@given(card=typed_cards(), before=around, after=around, left=gap, right=gap)
@example(card="6212 3456 7890 1234 569", before="", after="", left=" ", right=" ")
@example(card="４１１１\u3000１１１１\u3000１１１１\u3000１１１１", before="卡号", after="", left="：", right=" ")
def test_a_card_in_any_format_is_masked_and_only_its_digits(card, before, after, left, right):
    text = before + left + card + right + after
    masked = mask_secrets(text)
    assert masked.text == before + left + digits_masked(card) + right + after
    assert "card" in masked.found


@settings(max_examples=200, deadline=None)
@given(code=st.text(string.digits, min_size=4, max_size=8), full_width=st.booleans(), template=st.sampled_from([
    "验证码是：{}", "{}是您的验证码", "【Google】{} 是你的验证码", "{} is your verification code",
    "Your Google Voice code is {}", "验证码 {}", "code: {}", "PIN {}", "G-{}"]))
def test_a_code_in_any_listed_format_is_masked(code, full_width, template):
    typed = code.translate(FULL_WIDTH) if full_width else code
    masked = mask_secrets(template.format(typed))
    assert masked.text == template.format(MASK * len(code)) and masked.found == ("verification_code",)


def test_the_fold_reads_every_decimal_digit_as_ascii():
    decimals = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Nd"]
    assert fold("".join(decimals))[0] == "".join(str(unicodedata.decimal(d)) for d in decimals)


def test_what_is_shown_and_what_is_stored_are_masked_alike(tiny_assistant, tmp_path):
    """The assistant's question (shown on the page) and the store's row are the one masking of the text."""
    from retrieval.store.feedback import FeedbackStore

    typed = "GV怎么充值 卡号４１１１\u3000１１１１\u3000１１１１\u3000１１１１ 密码 hunter2 482913是您的验证码"
    answer = tiny_assistant.ask(typed)
    assert answer.question == mask_secrets(typed).text
    assert "hunter2" not in answer.question and "482913" not in answer.question and "１１１１" not in answer.question
    assert set(mask_secrets(typed).found) == {"card", "password", "verification_code"} and answer.notices
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    store.log_interaction(session_id="s", question=typed, language="zh", provider=None, kind="answer",
                          entry_id=None, topic=None, answered=True, score=None)
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    store.close()
    on_disk += path.read_bytes()
    assert answer.question.encode() in on_disk
    assert b"hunter2" not in on_disk and b"482913" not in on_disk and "１１１１".encode() not in on_disk
