"""A minimal RADIUS request encoder for the benchmark's own load generator and readiness probes.

Independent of lastmile's codec on purpose (the benchmark must not measure a server with its
own encoder) and of pyrad (too slow to pre-encode 100,000 packets in a second). It knows only
the attributes the benchmark sends (see ``workload.py``), written as ``(name, value)`` pairs,
the same pairs that become radclient's request files, so both load generators send the same
requests.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import struct

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
MESSAGE_AUTHENTICATOR = 80

# name -> (type, kind); kind is "string", "integer", "ipaddr", "password" or an enum dict
ENUM_SERVICE_TYPE = {"Framed-User": 2}
ENUM_FRAMED_PROTOCOL = {"PPP": 1}
ENUM_NAS_PORT_TYPE = {"Ethernet": 15}
ENUM_STATUS_TYPE = {"Start": 1, "Stop": 2, "Interim-Update": 3, "Accounting-On": 7, "Accounting-Off": 8}
ENUM_AUTHENTIC = {"RADIUS": 1}
ENUM_TERMINATE_CAUSE = {"User-Request": 1, "Lost-Carrier": 2, "Idle-Timeout": 4}
ATTRIBUTES: dict[str, tuple[int, str | dict[str, int]]] = {
    "User-Name": (1, "string"),
    "User-Password": (2, "password"),
    "NAS-IP-Address": (4, "ipaddr"),
    "NAS-Port": (5, "integer"),
    "Service-Type": (6, ENUM_SERVICE_TYPE),
    "Framed-Protocol": (7, ENUM_FRAMED_PROTOCOL),
    "Framed-IP-Address": (8, "ipaddr"),
    "Called-Station-Id": (30, "string"),
    "Calling-Station-Id": (31, "string"),
    "NAS-Identifier": (32, "string"),
    "Acct-Status-Type": (40, ENUM_STATUS_TYPE),
    "Acct-Delay-Time": (41, "integer"),
    "Acct-Input-Octets": (42, "integer"),
    "Acct-Output-Octets": (43, "integer"),
    "Acct-Session-Id": (44, "string"),
    "Acct-Authentic": (45, ENUM_AUTHENTIC),
    "Acct-Session-Time": (46, "integer"),
    "Acct-Input-Packets": (47, "integer"),
    "Acct-Output-Packets": (48, "integer"),
    "Acct-Terminate-Cause": (49, ENUM_TERMINATE_CAUSE),
    "Acct-Input-Gigawords": (52, "integer"),
    "Acct-Output-Gigawords": (53, "integer"),
    "Event-Timestamp": (55, "integer"),
    "NAS-Port-Type": (61, ENUM_NAS_PORT_TYPE),
    "NAS-Port-Id": (87, "string"),
}

Attrs = list[tuple[str, str | int]]


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding of RFC 2865 section 5.2."""
    padded = password + b"\0" * (-len(password) % 16 if password else 16)
    out, prev = bytearray(), authenticator
    for i in range(0, len(padded), 16):
        digest = hashlib.md5(secret + prev).digest()
        block = bytes(a ^ b for a, b in zip(padded[i : i + 16], digest, strict=True))
        out += block
        prev = block
    return bytes(out)


def _value(kind: str | dict[str, int], value: str | int, secret: bytes, authenticator: bytes) -> bytes:
    if isinstance(kind, dict):
        return struct.pack(">I", kind[str(value)])
    if kind == "integer":
        return struct.pack(">I", int(value))
    if kind == "ipaddr":
        return ipaddress.IPv4Address(str(value)).packed
    if kind == "password":
        return hide_password(str(value).encode(), secret, authenticator)
    return str(value).encode()


def encode_attrs(attrs: Attrs, secret: bytes, authenticator: bytes) -> bytes:
    out = bytearray()
    for name, value in attrs:
        number, kind = ATTRIBUTES[name]
        data = _value(kind, value, secret, authenticator)
        out += bytes((number, len(data) + 2)) + data
    return bytes(out)


def access_request(ident: int, attrs: Attrs, secret: bytes) -> bytes:
    """An Access-Request with a random authenticator and a Message-Authenticator (first)."""
    authenticator = os.urandom(16)
    body = bytes((MESSAGE_AUTHENTICATOR, 18)) + bytes(16) + encode_attrs(attrs, secret, authenticator)
    header = struct.pack(">BBH", ACCESS_REQUEST, ident, 20 + len(body))
    unsigned = header + authenticator + body
    mac = hmac.new(secret, unsigned, hashlib.md5).digest()
    return header + authenticator + body[:2] + mac + body[18:]


def accounting_request(ident: int, attrs: Attrs, secret: bytes) -> bytes:
    """An Accounting-Request; its authenticator is the MD5 of RFC 2866 section 3."""
    body = encode_attrs(attrs, secret, bytes(16))
    header = struct.pack(">BBH", ACCOUNTING_REQUEST, ident, 20 + len(body))
    authenticator = hashlib.md5(header + bytes(16) + body + secret).digest()
    return header + authenticator + body


def reply_ok(reply: bytes, request: bytes, secret: bytes) -> bool:
    """Whether ``reply`` answers ``request`` with a valid Response Authenticator."""
    if len(reply) < 20 or reply[1] != request[1]:
        return False
    expected = hashlib.md5(reply[:4] + request[4:20] + reply[20:] + secret).digest()
    return hmac.compare_digest(expected, reply[4:20])
