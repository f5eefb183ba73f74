"""Secrets: find card numbers, security codes and verification codes in what a user typed, and mask them."""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "•"
CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?![\d])")
# A keyword, a few characters of glue ("is", ":", "是"), then the code itself.
SECURITY_CODE = re.compile(
    r"(?i)(cvv2?|cvc2?|cid|security\s*code|安全码|安全碼|卡背面?(?:的)?(?:三|3)位数?|背面(?:三|3)位(?:数|數)?)"
    r"(\s*(?:is|是|为|為|:|：|=|#)?\s*)(\d{3,4})(?!\d)")
VERIFICATION_CODE = re.compile(
    r"(?i)(verification\s*code|verify\s*code|auth(?:entication)?\s*code|one[-\s]?time\s*(?:pass)?code|otp|passcode|"
    r"\bcode|验证码|驗證碼|校验码|校驗碼|动态码|動態碼|短信码|pin\s*(?:code)?)"
    r"(\s*(?:is|是|为|為|:|：|=|#)?\s*)((?:g-)?\d{4,8})(?!\d)")
GOOGLE_CODE = re.compile(r"(?<![\w-])(G-)(\d{6})(?!\d)")


@dataclass(frozen=True)
class Masked:
    text: str
    found: tuple[str, ...]  # kinds found: card, security_code, verification_code

    @property
    def had_secrets(self) -> bool:
        return bool(self.found)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _hide(s: str) -> str:
    return re.sub(r"\d", MASK, s)


def mask_secrets(text: str) -> Masked:
    """Replace every digit of a card number, CVV or verification code with •, keeping the rest.

    >>> mask_secrets("my card 4111 1111 1111 1111 cvv 123").text
    'my card •••• •••• •••• •••• cvv •••'
    """
    found: list[str] = []

    def card(m: re.Match) -> str:
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found.append("card")
            return _hide(m.group())
        return m.group()

    def code(kind: str):
        def replace(m: re.Match) -> str:
            found.append(kind)
            return m.group(1) + m.group(2) + _hide(m.group(3))
        return replace

    text = CARD.sub(card, text)
    text = SECURITY_CODE.sub(code("security_code"), text)
    text = VERIFICATION_CODE.sub(code("verification_code"), text)
    text = GOOGLE_CODE.sub(lambda m: (found.append("verification_code"), m.group(1) + _hide(m.group(2)))[1], text)
    return Masked(text, tuple(dict.fromkeys(found)))
