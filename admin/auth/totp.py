"""The second factor: TOTP (RFC 6238, pyotp) with a QR code to enrol (segno, SVG) and one-time
recovery codes. Pure: the caller stores the secret (sealed) and the last step used.

A code is accepted once: :func:`verify` returns the time step it matched, and a code of that step
or an earlier one is refused afterwards (RFC 6238 section 5.2: "the verifier MUST NOT accept the
second attempt of the OTP after the successful validation has been issued for the first OTP").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
import segno

ISSUER = "lastmile"
STEP_S = 30
VALID_WINDOW = 1  # one step either side: a phone's clock 30 s off still logs in
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, login: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an inline SVG element (no XML declaration)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff"))


def verify(secret: str, code: str, now: float, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for at ``now`` and not used before, else None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():  # "١٢٣٤٥٦".isdigit() too
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_S)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_S), code):
            return step if last_step is None or step > last_step else None
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes of 10 base32 characters, shown once as ``xxxxx-xxxxx``."""
    out = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))  # 50 bits
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def hash_recovery(code: str) -> str:
    return hashlib.sha256("".join(code.split()).replace("-", "").lower().encode()).hexdigest()


def use_recovery(stored: list[str], code: str) -> list[str] | None:
    """The stored hashes without ``code``'s when it is one of them (it is spent), else None."""
    digest = hash_recovery(code)
    if not any(hmac.compare_digest(digest, h) for h in stored):
        return None
    return [h for h in stored if h != digest]

