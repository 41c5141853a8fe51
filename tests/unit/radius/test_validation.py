"""Packet validation (reliability checks R-1, R-4, R-19): every malformed class is dropped with its
own reason, before anything reaches a handler."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from radiusd import codec
from radiusd.codec import CodecError

VECTORS = Path(__file__).parents[2] / "vectors" / "radius"
MALFORMED = json.loads((VECTORS / "malformed.json").read_text())
SECRET = MALFORMED["secret"].encode()
PAP = bytes.fromhex((VECTORS / "mikrotik_pppoe_pap_request.hex").read_text())


def case_id(case: dict[str, Any]) -> str:
    return f"{case['reason']}:{case['why']}"


@pytest.mark.parametrize("case", MALFORMED["packets"], ids=case_id)
def test_malformed_packet_is_dropped_with_its_reason(case: dict[str, Any]) -> None:
    with pytest.raises(CodecError) as error:
        codec.decode_request(bytes.fromhex(case["hex"]), SECRET, **case["options"])
    assert error.value.reason == case["reason"]
    assert error.value.reason in codec.DROP_REASONS


def test_every_request_side_reason_has_a_vector() -> None:
    response_only = {"bad_response_authenticator", "unexpected_code"}
    covered = {case["reason"] for case in MALFORMED["packets"]}
    assert covered == set(codec.DROP_REASONS) - response_only
    assert len(set(codec.DROP_REASONS)) == len(codec.DROP_REASONS)


def pap_without_ma(*extra: bytes) -> bytes:
    """A PAP Access-Request without Message-Authenticator, as an old NAS sends it."""
    body = b"\x01\x07carol" + b"\x02\x12" + bytes(16) + b"".join(extra)
    return struct.pack(">BBH", 1, 9, 20 + len(body)) + b"\x42" * 16 + body


@pytest.mark.parametrize(
    ("require_ma", "limit_proxy_state", "proxy_state", "outcome"),
    [
        (True, True, False, "missing_message_authenticator"),
        (True, False, False, "missing_message_authenticator"),
        (False, True, False, None),
        (False, True, True, "proxy_state_without_ma"),
        (False, False, True, None),
    ],
)
def test_blastradius_settings(
    require_ma: bool, limit_proxy_state: bool, proxy_state: bool, outcome: str | None
) -> None:
    """FreeRADIUS 3.2.5 require_message_authenticator / limit_proxy_state semantics."""
    data = pap_without_ma(b"\x21\x04ps" if proxy_state else b"")
    if outcome is None:
        request = codec.decode_request(data, SECRET, require_ma=require_ma, limit_proxy_state=limit_proxy_state)
        assert not request.has_message_authenticator
    else:
        with pytest.raises(CodecError) as error:
            codec.decode_request(data, SECRET, require_ma=require_ma, limit_proxy_state=limit_proxy_state)
        assert error.value.reason == outcome


def test_message_authenticator_is_verified_even_when_not_required() -> None:
    forged = PAP.replace(b"alice@", b"alicE@")
    with pytest.raises(CodecError) as error:
        codec.decode_request(forged, SECRET, require_ma=False, limit_proxy_state=False)
    assert error.value.reason == "bad_message_authenticator"


def test_wrong_secret_fails_message_authenticator() -> None:
    with pytest.raises(CodecError) as error:
        codec.decode_request(PAP, b"another-secret-of-nas-b")
    assert error.value.reason == "bad_message_authenticator"


def test_octets_past_length_are_padding() -> None:
    request = codec.decode_request(PAP + b"\x00\x01\x02garbage-not-an-attribute", SECRET)
    assert request.raw == PAP
    assert request.user_password == b"correct horse battery staple"


def test_max_attributes_is_a_setting() -> None:
    body = b"\x12\x03x" * 10
    data = struct.pack(">BBH", 4, 1, 20 + len(body)) + bytes(16) + body
    data = data[:4] + hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest() + data[20:]
    assert len(codec.decode_request(data, SECRET).get_all("Reply-Message")) == 10
    with pytest.raises(CodecError) as error:
        codec.decode_request(data, SECRET, max_attributes=9)
    assert error.value.reason == "too_many_attributes"


def test_unknown_vendor_with_another_vsa_format_is_kept_whole() -> None:
    """Only vendors in the dictionary are held to RFC 2865 section 5.26; others stay raw."""
    vsa = struct.pack(">I", 4846) + b"\x00\x01\x00\x05x"  # Lucent's 2-octet types: not 5.26
    body = b"\x1a" + bytes((len(vsa) + 2,)) + vsa
    data = struct.pack(">BBH", 4, 1, 20 + len(body)) + bytes(16) + body
    data = data[:4] + hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest() + data[20:]
    assert codec.decode_request(data, SECRET).attributes() == {"Vendor-Specific": [vsa]}


def test_accounting_request_message_authenticator_uses_zero_authenticator() -> None:
    body = b"\x28\x06\x00\x00\x00\x01" + b"\x50\x12" + bytes(16)
    head = struct.pack(">BBH", 4, 1, 20 + len(body))
    mac = hmac.digest(SECRET, head + bytes(16) + body, "md5")
    body = body[:8] + mac
    data = head + hashlib.md5(head + bytes(16) + body + SECRET).digest() + body
    assert codec.decode_request(data, SECRET).has_message_authenticator


@pytest.mark.parametrize("require_ma", [True, False])
def test_status_server_requires_message_authenticator(require_ma: bool) -> None:
    status = bytes.fromhex((VECTORS / "status_server.hex").read_text())
    assert codec.decode_request(status, SECRET, require_ma=require_ma).code == codec.Code.STATUS_SERVER
    with pytest.raises(CodecError) as error:
        codec.decode_request(status, b"wrong-secret-entirely", require_ma=require_ma)
    assert error.value.reason == "bad_message_authenticator"


def test_response_decoder_drops_requests() -> None:
    with pytest.raises(CodecError) as error:
        codec.decode_response(PAP, PAP[4:20], SECRET)
    assert error.value.reason == "unknown_code"


def test_codec_error_carries_reason_and_detail() -> None:
    with pytest.raises(CodecError) as error:
        codec.decode_request(PAP[:10], SECRET)
    assert (error.value.reason, error.value.detail, str(error.value)) == (
        "short_packet",
        "10 octets",
        "short_packet: 10 octets",
    )
