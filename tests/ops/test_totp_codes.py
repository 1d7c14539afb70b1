"""Second-factor codes as people type them."""

from __future__ import annotations

import time

import pyotp

from newsletter.ops.users import _matching_step

SECRET = pyotp.random_base32()


def test_full_width_digits_are_the_same_code_and_other_digits_are_a_wrong_code() -> None:
    now = time.time()
    code = pyotp.TOTP(SECRET).at(now)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)  # "１２３４５６"
    arabic_indic = "".join(chr(ord(c) - ord("0") + 0x0660) for c in code)
    step = _matching_step(SECRET, code, now)
    assert step is not None
    assert _matching_step(SECRET, full_width, now) == step
    assert _matching_step(SECRET, f" {code[:3]} {code[3:]} ", now) == step
    assert _matching_step(SECRET, arabic_indic, now) is None  # not a crash
    assert _matching_step(SECRET, "12345", now) is None
