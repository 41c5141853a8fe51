"""Webhook signatures (admin/notifications/sign.py): Stripe's scheme, a known vector, what a receiver
refuses (another secret or body, an old or future timestamp, a malformed header), and the verifier
docs/webhooks.md gives integrators agrees with ours."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.notifications import sign

ROOT = Path(__file__).resolve().parents[3]
BODY = b'{"id":1,"type":"invoice.created","occurred_at":"2026-04-02T10:00:00+00:00","data":{"total":"37.2000"}}'
T = 1775124000


def test_the_header_is_t_and_v1_an_hmac_sha256_of_t_dot_body() -> None:
    header = sign.sign("whsec_abc", BODY, T)
    expected = hmac.new(b"whsec_abc", b"1775124000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1775124000,v1={expected}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)


def test_a_signature_verifies_within_the_tolerance_only() -> None:
    header = sign.sign("whsec_abc", BODY, T)
    assert sign.verify("whsec_abc", BODY, header, T) == T
    assert sign.verify("whsec_abc", BODY, header, T + 300) == T
    assert sign.verify("whsec_abc", BODY, header, T - 300) == T  # a receiver's clock a little behind
    for now in (T + 301, T - 301):
        with pytest.raises(sign.SignatureError, match="from now"):
            sign.verify("whsec_abc", BODY, header, now)
    assert sign.verify("whsec_abc", BODY, header, T + 3000, tolerance=3600) == T


@pytest.mark.parametrize(("secret", "body"), [("whsec_other", BODY), ("whsec_abc", BODY + b" "),
                                              ("whsec_abc", BODY.replace(b"37.2000", b"3.72000"))])
def test_another_secret_or_a_changed_body_does_not_verify(secret: str, body: bytes) -> None:
    with pytest.raises(sign.SignatureError, match="no signature matches"):
        sign.verify(secret, body, sign.sign("whsec_abc", BODY, T), T)


def test_one_matching_signature_of_several_is_enough_and_other_schemes_are_ignored() -> None:
    good = sign.sign("whsec_new", BODY, T).split(",")[1]
    old = sign.sign("whsec_old", BODY, T).split(",")[1]
    assert sign.verify("whsec_new", BODY, f"t={T},{old},{good},v0=ignored", T) == T
    assert sign.verify("whsec_old", BODY, f"t={T}, {old}, {good}", T) == T


@pytest.mark.parametrize("header", ["", "v1=ab", f"t={T}", f"t=soon,v1={'0' * 64}", f"t={T};v1=ab",
                                    f"t=-{T},v1=ab", f"t={'9' * 40},v1=ab"])
def test_a_malformed_header_is_refused_with_a_reason(header: str) -> None:
    with pytest.raises(sign.SignatureError, match="malformed"):
        sign.verify("whsec_abc", BODY, header, T)


@given(st.text(max_size=60))
def test_any_header_is_either_verified_or_refused(header: str) -> None:
    with contextlib.suppress(sign.SignatureError):
        sign.verify("whsec_abc", BODY, header, T)


def _documented_verifier() -> Any:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    match = re.search(r"```python\n(import hashlib, hmac, time\n.*?)```", text, re.S)
    assert match, "docs/webhooks.md has no Python verifier"
    assert len(match.group(1).strip().splitlines()) <= 12
    scope: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/webhooks.md", "exec"), scope)  # our own documentation
    return scope["verify"]


def test_the_verifier_of_the_docs_agrees_with_lastmile_s() -> None:
    import time

    verify = _documented_verifier()
    now = int(time.time())
    header = sign.sign("whsec_abc", BODY, now)
    assert verify("whsec_abc", BODY, header)
    assert not verify("whsec_other", BODY, header)
    assert not verify("whsec_abc", BODY + b"x", header)
    assert not verify("whsec_abc", BODY, sign.sign("whsec_abc", BODY, now - 301))
    assert not verify("whsec_abc", BODY, "garbage")
    assert not verify("whsec_abc", BODY, f"t={now}")
