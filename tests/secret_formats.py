"""How people type secrets: card numbers with every separator the hostile probe found (issue 12), full-width
digits, codes before or after their keyword. Shared by the property tests of test_safety and test_hostile."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from retrieval.serving.safety import luhn_ok

# Between the groups of a card number: what keyboards, input methods and copy-paste put there.
CARD_SEPARATORS = ["", " ", "-", "\u3000", ".", "/", "_", ",", "  ", " - ", "\t", "\u00a0", "\u2009", "\u202f",
                   "\u200b", "\n", "\r\n", "\u2060", "\ufeff", "－", "．", "／", "，"]
FULL_WIDTH = str.maketrans(string.digits, "０１２３４５６７８９")
# Layouts: 4-4-4-4 for most cards, 4-6-5 for American Express, 6-13 and 4-4-4-4-3 for UnionPay's 19 digits;
# None: groups of four, the last one shorter, for any length from 13 to 19.
LAYOUTS = [None, (4, 4, 4, 4), (4, 6, 5), (6, 13), (4, 4, 4, 4, 3)]


def with_check_digit(body: str) -> str:
    return next(body + d for d in string.digits if luhn_ok(body + d))


def grouped(digits: str, layout: tuple[int, ...] | None) -> list[str]:
    sizes = layout or [4] * (len(digits) // 4) + ([len(digits) % 4] if len(digits) % 4 else [])
    groups, start = [], 0
    for size in sizes:
        groups.append(digits[start:start + size])
        start += size
    return groups


card_numbers = st.text(string.digits, min_size=12, max_size=18).map(with_check_digit)


@st.composite
def typed_cards(draw) -> str:
    """A Luhn-valid number of 13 to 19 digits as someone might type it."""
    layout = draw(st.sampled_from(LAYOUTS))
    size = sum(layout) if layout else draw(st.integers(13, 19))
    digits = with_check_digit(draw(st.text(string.digits, min_size=size - 1, max_size=size - 1)))
    typed = draw(st.sampled_from(CARD_SEPARATORS)).join(grouped(digits, layout))
    return typed.translate(FULL_WIDTH) if draw(st.booleans()) else typed


CODE_WORDS = ["cvv", "CVC", "cid", "security code", "安全码", "卡背面三位", "背面", "CVV码", "verification code",
              "otp", "code", "验证码", "驗證碼", "pin", "PIN code", "passcode", "G-", "g-", "is", "是", "：", ":", "=",
              "#", "is your verification code", "是您的验证码", "是你的验证码", "【Google】", "my cvv is:", "密码",
              "password", "password:", "pwd", "口令", "SSN", "ssn:", "社会安全号码", "exp", "有效期", "12/27",
              "hunter2", "is your"]
secretish = st.lists(st.one_of(
    st.sampled_from(CODE_WORDS),
    st.text(string.digits, min_size=1, max_size=8),
    st.text(string.digits, min_size=1, max_size=8).map(lambda d: d.translate(FULL_WIDTH)),
    st.sampled_from([" ", "-", "  ", "\n", "/", "x", "\u3000", "\u200b", ".", "_", ",", " - ", "\t", "\u00a0"]),
    typed_cards(),
    st.text(max_size=5),
), max_size=15).map("".join)
