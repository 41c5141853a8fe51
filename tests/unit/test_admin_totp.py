"""The second factor's pure parts (admin/auth/totp.py): a code counts once, recovery codes once."""

from __future__ import annotations

import re

import pyotp
import pytest

from admin.auth import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_700_000_015.0          # 15 s into its 30-second step
STEP = int(NOW // totp.STEP_S)


def code_at(step: int) -> str:
    return pyotp.TOTP(SECRET).at(step * totp.STEP_S)


def test_the_current_code_is_accepted_and_names_its_step() -> None:
    assert totp.verify(SECRET, code_at(STEP), NOW, None) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_the_adjacent_steps_are_accepted_for_clock_drift(offset: int) -> None:
    assert totp.verify(SECRET, code_at(STEP + offset), NOW, None) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_further_off_are_refused(offset: int) -> None:
    code = code_at(STEP + offset)
    assert all(code != code_at(STEP + d) for d in (-1, 0, 1))  # (a collision would make this test meaningless)
    assert totp.verify(SECRET, code, NOW, None) is None


def test_a_code_is_accepted_once() -> None:
    used = totp.verify(SECRET, code_at(STEP), NOW, None)
    assert used == STEP
    assert totp.verify(SECRET, code_at(STEP), NOW, used) is None          # replay
    assert totp.verify(SECRET, code_at(STEP), NOW + 5, used) is None      # replay, a little later


def test_a_step_older_than_the_last_used_one_is_refused() -> None:
    assert totp.verify(SECRET, code_at(STEP - 1), NOW, STEP) is None
    assert totp.verify(SECRET, code_at(STEP + 1), NOW, STEP) == STEP + 1   # a later one still works


def test_spaces_inside_a_code_are_ignored() -> None:
    code = code_at(STEP)
    assert totp.verify(SECRET, f" {code[:3]} {code[3:]} ", NOW, None) == STEP


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12345a", "abcdef", "١٢٣٤٥٦", "-12345", "+12345",
                                 "123 45", "000000000"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert totp.verify(SECRET, bad, NOW, None) is None


def test_new_secrets_are_base32_and_differ() -> None:
    a, b = totp.new_secret(), totp.new_secret()
    assert a != b and re.fullmatch(r"[A-Z2-7]{32}", a)


def test_the_provisioning_uri_names_the_issuer_and_login() -> None:
    uri = totp.provisioning_uri(SECRET, "root")
    assert uri.startswith("otpauth://totp/lastmile:root?") and f"secret={SECRET}" in uri and "issuer=lastmile" in uri


def test_the_qr_code_is_an_inline_svg() -> None:
    svg = totp.qr_svg(totp.provisioning_uri(SECRET, "root"))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg


def test_recovery_codes_are_ten_distinct_and_shaped() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == totp.RECOVERY_CODES == len(set(codes))
    assert all(re.fullmatch(r"[a-z2-7]{5}-[a-z2-7]{5}", c) for c in codes)


def test_recovery_codes_are_stored_as_hashes_only() -> None:
    code = totp.new_recovery_codes()[0]
    digest = totp.hash_recovery(code)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and code not in digest and code.replace("-", "") not in digest
    # Typed without the dash, in capitals, around spaces: the same code.
    assert totp.hash_recovery(code.replace("-", "").upper() + " ") == digest
    assert totp.hash_recovery(code.replace("-", " ")) == digest


def test_a_recovery_code_is_spent_once() -> None:
    codes = totp.new_recovery_codes()
    stored = [totp.hash_recovery(c) for c in codes]
    remaining = totp.use_recovery(stored, codes[3])
    assert remaining is not None and len(remaining) == len(stored) - 1
    assert totp.hash_recovery(codes[3]) not in remaining
    assert totp.use_recovery(remaining, codes[3]) is None     # the second use
    assert totp.use_recovery(remaining, codes[4]) is not None  # the others still work


def test_an_unknown_recovery_code_is_refused() -> None:
    stored = [totp.hash_recovery(c) for c in totp.new_recovery_codes()]
    assert totp.use_recovery(stored, "aaaaa-aaaaa") is None
    assert totp.use_recovery([], "aaaaa-aaaaa") is None
