"""Secrets: find card numbers, security and verification codes, passwords and SSNs in what a user typed, and mask them.

Detection reads a folded copy of the text: NFKC, every decimal digit as an ASCII one ("４" -> "4"), every kind
of space (zero-width ones included) as a plain space, combining marks dropped, and the escapes JSON writes for
line breaks and tabs read as spaces. Masking then replaces, in the user's own text, only the characters of
what was found: the rest, separators inside a card number included, stays as typed, and the masked text has
the length of the original. The same function masks what is shown and what is stored. Time is linear in the
length of the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

MASK = "•"
KINDS = ("card", "security_code", "verification_code", "password", "ssn")

# -- folding --------------------------------------------------------------------------------------
_ASCII = {i: " " for i in range(0x20) if chr(i) not in "\n\r\t\x0b\x0c"}
_ASCII.update({ord(c): " " for c in "\n\r\t\x0b\x0c\x7f"})
# The escapes json.dumps writes for line breaks and tabs: two characters, read as two spaces.
JSON_ESCAPE = re.compile(r"\\[nrt]")


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    # Invisible characters (zero-width spaces, joiners, direction marks) separate like a space: two card
    # numbers joined by one are still two numbers.
    if ch.isspace() or category in ("Cc", "Cf"):
        return " "
    if category in ("Mn", "Me"):  # a mark on the character before
        return ""
    folded = unicodedata.normalize("NFKC", ch)
    # "①", "²", "㉑" are no digits anyone types in a number; "ﷺ" (18 letters) is no keyword, and 100,000
    # of them would cost as much as 1.8 million characters.
    if len(folded) > 3 or any("0" <= c <= "9" for c in folded):
        return ch
    return folded


def fold(text: str) -> tuple[str, list[int] | None]:
    """The text as detection reads it, and for each of its characters the index of the character it came
    from (None when they are the same: plain ASCII folds character for character).

    >>> fold("４１１１\u200b１１１１")[0]
    '4111 1111'
    """
    if text.isascii():
        folded, origin = text.translate(_ASCII), None
    else:
        parts: list[str] = []
        origin = []
        for i, ch in enumerate(text):
            f = _fold_char(ch)
            if f:
                parts.append(f)
                origin.extend([i] * len(f))
        folded = "".join(parts)
    return JSON_ESCAPE.sub("  ", folded), origin


# -- what is looked for, in the folded text -------------------------------------------------------
def either(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


def latin(*words: str) -> str:
    """Latin keywords, never inside a longer word ("pin" is not in "spinning")."""
    return rf"(?<![a-z]){either(*words)}(?![a-z])"


# A digit or an already masked one: a secret never starts or ends next to either, so masking twice is
# masking once.
NOT_DIGIT_BEFORE = r"(?<![0-9•])"
NOT_DIGIT_AFTER = r"(?![0-9•])"
# Between the groups of a card number: one to four spaces (a tab, a line break, two spaces, the escape of
# a line break), or one separator with a space either side (" - ", ". ", "/", "_", ",").
CARD_SEPARATOR = r"(?: {0,2}[-‐‑‒–—―−_./,、·・] {0,2}| {1,4})"
DIGIT_RUN = re.compile(rf"[0-9]++(?:{CARD_SEPARATOR}[0-9]++)*+")
GROUP = re.compile(r"[0-9]+")
NEXT_GROUP = re.compile(rf"{CARD_SEPARATOR}[0-9]")
# What may stand between a keyword and its value: "is", ":", "是", "码", some spaces.
GLUE_WORD = either("is", "was", "are", "=", ":", "#", "是", "为", "為", "码", "碼", "号", "號", "number", r"no\.?")
GLUE = rf"(?: {{0,3}}{GLUE_WORD}){{0,3}} {{0,3}}"
SECURITY_WORD = either(
    latin("cvv2?", "cvc2?", "cvn2?", "csc", "cid", "security ?code", "card ?verification ?(?:value|code|number)?"),
    "安全码", "安全碼", "安全代码", "卡背面?的?(?:三|3|四|4)位数?字?",
    "背面(?:的)?(?:(?:三|3|四|4)位)?(?:数字|數字|数|數)?")
VERIFY_QUALIFIER = either("verification", "verify", "confirmation", "auth(?:entication|orization)?", "access",
                          "log ?in", "sign ?in", "security", "one[- ]?time", "sms", "text", "google", "voice",
                          "whatsapp", "telegram", "wechat", "facebook", "microsoft", "apple", "paypal", "2fa",
                          "two[- ]factor")
# Codes of other kinds: "zip code 10001", "area code 646", "error code 1001".
NOT_A_SECRET_CODE = "".join(f"(?<!{word} )" for word in ("zip", "area", "postal", "post", "country", "error",
                                                             "status", "product"))
VERIFY_WORD = either(
    NOT_A_SECRET_CODE + latin(rf"(?:{VERIFY_QUALIFIER}[ -]?){{0,3}}(?:pass)?code", "otp",
                              "one[- ]?time[ -]?pass(?:word)?", r"pin(?: ?(?:code|number|#|no\.?))?"),
    "验证码", "驗證碼", "校验码", "校驗碼", "动态码", "動態碼", "短信码", "确认码", "確認碼", "认证码", "認證碼",
    "登录码", "登入碼", "授权码", "授權碼", "激活码")
SECURITY_CODE = re.compile(rf"{SECURITY_WORD}{GLUE}{NOT_DIGIT_BEFORE}([0-9]{{3,4}}){NOT_DIGIT_AFTER}", re.I)
# Up to four groups of digits ("48 29 13", "4829 13"); which of them make the code is decided in _code_span.
VERIFICATION_CODE = re.compile(
    rf"{VERIFY_WORD}{GLUE}{NOT_DIGIT_BEFORE}(?:g-)?([0-9]{{1,8}}(?:(?: {{1,2}}|-| - )[0-9]{{1,8}}){{0,3}})", re.I)
# A code before its keyword, as text messages put it: "482913 is your verification code", "482913是您的验证码"
# (a word between them: "2026 verification code" is a year).
OWNER = either("your", "my", "the", "a", "您的", "你的", "我的", "您", "你")
CODE_FIRST = re.compile(
    rf"(?<![0-9•a-z-])(?:g-)?([0-9]{{3,8}}){NOT_DIGIT_AFTER} {{0,2}}"
    rf"(?:{either('[,:]', 'is', 'are', '=', '是', '为', '為')} {{0,2}}{OWNER}?|{OWNER}) {{0,2}}"
    rf"(?:({SECURITY_WORD})|{VERIFY_WORD})", re.I)
GOOGLE_CODE = re.compile(rf"(?<![0-9a-z•-])g-([0-9]{{4,8}}){NOT_DIGIT_AFTER}", re.I)
# A password: printable ASCII after its keyword, up to a space or anything else. The glue is possessive: once
# "password: is ••••" is masked, "is" must not become the password.
PASSWORD = re.compile(
    rf"({latin('pass ?word', 'passwd', 'pwd', 'passphrase')}|密码|密碼|口令)"
    rf"((?: {{0,3}}{either(latin('is', 'was'), '=', ':', '是', '为', '為')}){{0,2}}+ {{0,3}}+)([!-~]{{1,64}})", re.I)
PASSWORD_TAIL = re.compile(r"[.,;!?)\]}'\"]+$")
WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*", re.I)
# A US Social Security number: 3-2-4 digits (never 000, 666 or 9xx first, 00 then 0000), or 9 after its keyword.
SSN = re.compile(rf"{NOT_DIGIT_BEFORE}(?!000|666|9)[0-9]{{3}}( ?[-.] ?| )(?!00)[0-9]{{2}}\1(?!0000)[0-9]{{4}}"
                 rf"{NOT_DIGIT_AFTER}")
SSN_WORD = re.compile(
    either(latin("ssn", r"social security(?: number| no\.?| #)?"), "社会安全号码?", "社會安全號碼?", "社安号码?",
           "社安號碼?", "安全号码", "安全號碼")
    + rf"{GLUE}{NOT_DIGIT_BEFORE}([0-9]{{3}}[ .-]?[0-9]{{2}}[ .-]?[0-9]{{4}}){NOT_DIGIT_AFTER}", re.I)
# Right after a card number: its expiry date ("12/27", "有效期 12 27", "2027年12月") or a 3-4 digit code,
# with some glue words between; not an amount ("100 美元").
CARD_TAIL_GLUE = either(
    r"[ ,;:/|()\[\]=-]", "exp(?:iry|ires?|iration)?(?: date)?", "valid(?: thru| through| until)?", "good thru",
    "thru", "mm/yy", "有效期(?:至|到)?", "到期(?:日|时间)?", "过期(?:时间)?", "截止", "cvv2?", "cvc2?", "cid",
    "security code", "安全码", "安全碼", "背面", "码", "碼", "是")
EXPIRY = either(r"(?:0?[1-9]|1[0-2]) ?[/.-] ?(?:20)?[0-9]{2}", "(?:0[1-9]|1[0-2]) (?:20)?[0-9]{2}",
                r"20[0-9]{2} ?[/.年-] ?(?:0?[1-9]|1[0-2])月?")
AMOUNT = either("美元", "美金", "元", "块", "刀", "dollars?", "usd", "bucks", r"\$", "%", "分钟", "minutes?", "mins?",
                "gb", "mb", "天", "days?")
CARD_TAIL = re.compile(rf"{CARD_TAIL_GLUE}{{0,8}}?(?:({EXPIRY})|([0-9]{{3,4}})){NOT_DIGIT_AFTER}(?! ?{AMOUNT})",
                       re.I)


@dataclass(frozen=True)
class Masked:
    text: str
    found: tuple[str, ...]  # kinds found, from KINDS

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
    ("4111 1111 1111 1111 12/27", "pin 1234 4111 1111 1111 1111"), in time linear in the run. Every group
    of a card but its last has at least three digits, so a list of small numbers ("1, 2, 3, ...") is none.
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
            if groups[j][1] - groups[j][0] < 3:  # a short group ends every card it is in
                break
    return spans


def _code_span(m: re.Match, groups: int) -> tuple[int, int] | None:
    """The span of a code's digits: its groups from the first, while they add up to at most 8 digits."""
    start = end = m.start(groups)
    total = 0
    for g in GROUP.finditer(m.group(groups)):
        if total + len(g.group()) > 8:
            break
        total += len(g.group())
        end = m.start(groups) + g.end()
    following = m.string[end:end + 1]
    if total < 4 or following.isdigit() or following == MASK:
        return None
    return start, end


class Found(NamedTuple):
    kind: str
    start: int  # in the folded text
    end: int
    whole: bool = False  # every character masked (a password), not only the digits


def _cards(folded: str) -> Iterator[Found]:
    for run in DIGIT_RUN.finditer(folded):
        for a, b in card_spans(run.group()):
            end = run.start() + b
            yield Found("card", run.start() + a, end)
            for _ in range(2):  # its expiry date and security code, in either order
                tail = CARD_TAIL.match(folded, end)
                if not tail:
                    break
                if tail.group(2) and NEXT_GROUP.match(folded, tail.end()):  # "646 555 1234" is no code
                    after = CARD_TAIL.match(folded, tail.end())
                    if not (after and after.group(1)):  # unless an expiry date follows
                        break
                yield Found("card" if tail.group(1) else "security_code", tail.start(), tail.end())
                end = tail.end()


def _codes(folded: str) -> Iterator[Found]:
    for m in SECURITY_CODE.finditer(folded):
        yield Found("security_code", *m.span(1))
    for m in VERIFICATION_CODE.finditer(folded):
        if span := _code_span(m, 1):
            yield Found("verification_code", *span)
    for m in CODE_FIRST.finditer(folded):
        if m.group(2):  # "123 is my cvv"
            if len(m.group(1)) <= 4:
                yield Found("security_code", *m.span(1))
        elif len(m.group(1)) >= 4:
            yield Found("verification_code", *m.span(1))
    for m in GOOGLE_CODE.finditer(folded):
        yield Found("verification_code", *m.span(1))


def _passwords(folded: str) -> Iterator[Found]:
    for m in PASSWORD.finditer(folded):
        value = PASSWORD_TAIL.sub("", m.group(3))
        if not value or (m.group(1)[-1].isascii() and not m.group(2)):  # "password123" is no keyword
            continue
        if re.search(r"[:=]", m.group(2)) or not WORD.fullmatch(value):  # "password is wrong" says none
            yield Found("password", m.start(3), m.start(3) + len(value), whole=True)


def _ssns(folded: str) -> Iterator[Found]:
    for m in SSN.finditer(folded):
        yield Found("ssn", *m.span())
    for m in SSN_WORD.finditer(folded):
        yield Found("ssn", *m.span(1))


def mask_secrets(text: str) -> Masked:
    """Replace the digits of every card number (with its expiry date and code), CVV, verification code and
    SSN with •, and every character of a password, keeping the rest of what was typed.

    >>> mask_secrets("my card 4111 1111 1111 1111 cvv 123").text
    'my card •••• •••• •••• •••• cvv •••'
    >>> mask_secrets("４１１１\u3000１１１１\u3000１１１１\u3000１１１１, 密码 hunter2").text
    '••••\u3000••••\u3000••••\u3000••••, 密码 •••••••'
    """
    folded, origin = fold(text)
    found = [*_cards(folded), *_codes(folded), *_passwords(folded), *_ssns(folded)]
    chars = list(text)
    for f in found:
        for k in range(f.start, f.end):
            if f.whole or "0" <= folded[k] <= "9":
                chars[k if origin is None else origin[k]] = MASK
    masked = "".join(chars)
    if masked == text:
        return Masked(text, ())
    kinds = dict.fromkeys(f.kind for f in sorted(found, key=lambda f: (f.start, KINDS.index(f.kind))))
    return Masked(masked, tuple(kinds))
