"""Secrets typed into the chat are found and masked; ordinary numbers are left alone."""

import pytest

from retrieval.serving.safety import luhn_ok, mask_secrets

CARDS = ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000 0000 0004",
         "378282246310005", "6212 3456 7890 1234 563"]


@pytest.mark.parametrize("card", CARDS[:5])
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
])
def test_ordinary_numbers_kept(text):
    masked = mask_secrets(text)
    assert masked.text == text and not masked.found


def test_luhn():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_masking_is_idempotent():
    once = mask_secrets("card 4111 1111 1111 1111 cvv 123").text
    assert mask_secrets(once).text == once
