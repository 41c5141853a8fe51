"""Webhook signatures: ``Lastmile-Signature: t=<unix seconds>,v1=<hex>``, Stripe's scheme.

``v1`` is HMAC-SHA256, under the webhook's secret (its UTF-8 bytes), of ``"<t>.<body>"``: the
timestamp, a full stop and the request body exactly as sent. Binding the time into the MAC lets a
receiver refuse a replayed request: :func:`verify` accepts a signature only within ``tolerance``
seconds of its own clock. A header may carry several ``v1`` values (during a secret's rotation a
sender could sign with both); one that matches is enough. Pure: no clock is read, ``now`` is given.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Lastmile-Signature"
SCHEME = "v1"
TOLERANCE = 300  # seconds


class SignatureError(Exception):
    """The header is missing, malformed, too old, or no signature in it matches."""


def mac(secret: str, body: bytes, t: int) -> str:
    """The hex HMAC-SHA256 of ``"<t>.<body>"`` under ``secret``."""
    return hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int) -> str:
    """The ``Lastmile-Signature`` header's value for ``body`` sent at Unix time ``t``."""
    return f"t={t},{SCHEME}={mac(secret, body, t)}"


def parse(header: str) -> tuple[int, list[str]]:
    """``"t=1700000000,v1=ab..,v1=cd.."`` -> (1700000000, ["ab..", "cd.."]); SignatureError when malformed."""
    t: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {HEADER} header: {part.strip()[:40]!r} is not key=value")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError(f"malformed {HEADER} header: t={value[:20]!r} is not a Unix time")
            t = int(value)
        elif key == SCHEME:
            signatures.append(value)
        # other schemes (a later v2) are ignored, as Stripe's receivers do
    if t is None:
        raise SignatureError(f"malformed {HEADER} header: no t=")
    if not signatures:
        raise SignatureError(f"malformed {HEADER} header: no {SCHEME}= signature")
    return t, signatures


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = TOLERANCE) -> int:
    """Check ``header`` against ``body`` at Unix time ``now``; the signed timestamp, or SignatureError."""
    t, signatures = parse(header)
    if abs(now - t) > tolerance:
        raise SignatureError(f"timestamp {t} is {abs(now - t):.0f} s from now (tolerance {tolerance:g} s)")
    expected = mac(secret, body, t)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("no signature matches the body under this secret")
    return t
