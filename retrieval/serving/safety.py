"""Secrets: find card numbers, security codes and verification codes in what a user typed, and mask them."""

from __future__ import annotations

import re
from dataclasses import dataclass

MASK = "•"
# Digit groups joined by single spaces or hyphens; a card number is some consecutive groups of one run.
DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
GROUP = re.compile(r"\d+")
# A keyword, a few characters of glue ("is", ":", "是"), then the code itself.
SECURITY_CODE = re.compile(
    r"(?i)(cvv2?|cvc2?|cid|security\s*+code|安全码|安全碼|卡背面?(?:的)?(?:三|3)位数?|背面(?:三|3)位(?:数|數)?)"
    r"(\s*+(?:is|是|为|為|:|：|=|#)?\s*+)(\d{3,4})(?!\d)")
VERIFICATION_CODE = re.compile(
    r"(?i)(verification\s*+code|verify\s*+code|auth(?:entication)?\s*+code|one[-\s]?time\s*+(?:pass)?code|otp|passcode|"
    r"\bcode|验证码|驗證碼|校验码|校驗碼|动态码|動態碼|短信码|pin\s*+(?:code)?)"
    r"(\s*+(?:is|是|为|為|:|：|=|#)?\s*+)((?:g-)?\d{4,8})(?!\d)")
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


def _doubled(d: int) -> int:
    return d * 2 - 9 if d > 4 else d * 2


def card_spans(run: str) -> list[tuple[int, int]]:
    """Spans of `run` made of whole digit groups, 13 to 19 digits, that pass the Luhn check.

    Every group boundary is tried, so a card is found among the numbers typed around it
    ("4111 1111 1111 1111 12/27", "pin 1234 4111 1111 1111 1111"), in time linear in the run.
    """
    groups = [m.span() for m in GROUP.finditer(run)]
    digits = [int(ch) for a, b in groups for ch in run[a:b]]
    # luhn[p][k]: Luhn total of digits[:k] as seen by a window whose last digit has index parity p.
    luhn: tuple[list[int], list[int]] = ([0], [0])
    for k, d in enumerate(digits):
        luhn[0].append(luhn[0][-1] + (d if k % 2 == 0 else _doubled(d)))
        luhn[1].append(luhn[1][-1] + (_doubled(d) if k % 2 == 0 else d))
    first, count = [], 0  # index in `digits` of each group's first digit
    for a, b in groups:
        first.append(count)
        count += b - a
    spans = []
    for i, (start, _) in enumerate(groups):
        for j in range(i, len(groups)):
            lo, hi = first[i], first[j] + groups[j][1] - groups[j][0]
            if hi - lo > 19:
                break
            if hi - lo >= 13 and (luhn[(hi - 1) % 2][hi] - luhn[(hi - 1) % 2][lo]) % 10 == 0:
                spans.append((start, groups[j][1]))
    return spans


def _hide(s: str) -> str:
    return re.sub(r"\d", MASK, s)


def mask_secrets(text: str) -> Masked:
    """Replace every digit of a card number, CVV or verification code with •, keeping the rest.

    >>> mask_secrets("my card 4111 1111 1111 1111 cvv 123").text
    'my card •••• •••• •••• •••• cvv •••'
    """
    found: list[str] = []

    def card(m: re.Match) -> str:
        run = m.group()
        spans = card_spans(run)
        if not spans:
            return run
        found.append("card")
        chars = list(run)
        for start, end in spans:
            chars[start:end] = _hide(run[start:end])
        return "".join(chars)

    def code(kind: str):
        def replace(m: re.Match) -> str:
            found.append(kind)
            return m.group(1) + m.group(2) + _hide(m.group(3))
        return replace

    text = DIGIT_RUN.sub(card, text)
    text = SECURITY_CODE.sub(code("security_code"), text)
    text = VERIFICATION_CODE.sub(code("verification_code"), text)
    text = GOOGLE_CODE.sub(lambda m: (found.append("verification_code"), m.group(1) + _hide(m.group(2)))[1], text)
    return Masked(text, tuple(dict.fromkeys(found)))
