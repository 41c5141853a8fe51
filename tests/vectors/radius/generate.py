"""Regenerate the RADIUS golden vectors in this folder (a developer tool, not a test).

Valid packets are produced by FreeRADIUS's ``radclient`` (Debian package freeradius-utils), an
encoder independent of lastmile and pyrad: each request is sent to a UDP socket on 127.0.0.1 that
only records it.  Each ``<name>.hex`` holds the packet, ``<name>.json`` what it must decode to,
written from the attribute list given to radclient (not from our decoder).

``malformed.json`` holds one packet per drop reason, derived from those packets by byte surgery
here (no codec involved), with the reason each must be dropped for.

    apt-get install freeradius-utils
    python tests/vectors/radius/generate.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SECRET = "lastmile-vector-secret"
EVENT_TIME = 1763712000  # 2025-11-21T08:00:00Z

NAS = [
    ("NAS-IP-Address", "10.20.0.1"),
    ("NAS-Identifier", "bras1.pop2"),
]
PPPOE = [
    ("Service-Type", "Framed-User"),
    ("Framed-Protocol", "PPP"),
    ("NAS-Port", 15728650),
    ("NAS-Port-Type", "Ethernet"),
    ("Calling-Station-Id", "4C:5E:0C:12:34:56"),
    ("Called-Station-Id", "pppoe-fiber"),
    ("NAS-Port-Id", "vlan101"),
]
SESSION = [
    ("Acct-Session-Id", "81e0000a"),
    ("Framed-IP-Address", "100.64.3.17"),
    ("Framed-IPv6-Prefix", "2001:db8:17::/64"),
    ("Delegated-IPv6-Prefix", "2001:db8:1200::/56"),
    ("Class", {"hex": b"ai:0123456789abcdef0123456789abcdef".hex()}),
]
MA = ("Message-Authenticator", {"hex": "00"})

# RFC 2759 section 9.2: user "User", password "clientPass"
MSCHAP_AUTH_CHALLENGE = "5b5d7c7d7b3f2f3e3c2c602132262628"
MSCHAP_PEER_CHALLENGE = "21402324255e262a28295f2b3a337c7e"
MSCHAP_NT_RESPONSE = "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df"

# name: (radclient command, attributes, accessors expected beyond the attributes, notes)
VECTORS: dict[str, tuple[str, list[tuple[str, Any]], dict[str, Any]]] = {
    "mikrotik_pppoe_pap_request": (
        "auth",
        [MA, *PPPOE, ("User-Name", "alice@fiber.example"), ("User-Password", None), *NAS, SESSION[0]],
        {"user_password": "correct horse battery staple", "has_message_authenticator": True},
    ),
    "mikrotik_pppoe_chap_request": (
        "auth",
        [
            MA,
            *PPPOE,
            ("User-Name", "bob"),
            ("CHAP-Password", None),
            ("CHAP-Challenge", {"hex": "9a4c7d8e11223344556677889900aabb"}),
            *NAS,
            SESSION[0],
        ],
        {"chap_secret": "s3cret-chap"},
    ),
    "mikrotik_pppoe_mschapv2_request": (
        "auth",
        [
            MA,
            *PPPOE,
            ("User-Name", "User"),
            ("MS-CHAP-Challenge", {"hex": MSCHAP_AUTH_CHALLENGE}),
            ("MS-CHAP2-Response", {"hex": "0100" + MSCHAP_PEER_CHALLENGE + "00" * 8 + MSCHAP_NT_RESPONSE}),
            *NAS,
            SESSION[0],
        ],
        {"mschap_password": "clientPass", "mschap_success": "S=407A5589115FD0D6209F510FE9C04566932CDA56"},
    ),
    "proxied_pap_request": (
        "auth",
        [
            ("User-Name", "carol"),
            ("User-Password", None),
            *NAS,
            ("Proxy-State", {"hex": "3132"}),
            MA,
            ("Proxy-State", {"hex": "6869706f70"}),
        ],
        {"user_password": "pw-carol", "proxy_state": [{"hex": "3132"}, {"hex": "6869706f70"}]},
    ),
    "mikrotik_acct_start": (
        "acct",
        [
            ("Acct-Status-Type", "Start"),
            ("User-Name", "alice@fiber.example"),
            *PPPOE,
            *NAS,
            *SESSION,
            ("Acct-Authentic", "RADIUS"),
            ("Acct-Delay-Time", 0),
            ("Event-Timestamp", EVENT_TIME),
        ],
        {
            "acct_status_type": 1,
            "acct_unique_session_id": hashlib.md5(b"0123456789abcdef0123456789abcdef,81e0000a").hexdigest(),
        },
    ),
    "mikrotik_acct_interim": (
        "acct",
        [
            ("Acct-Status-Type", "Interim-Update"),
            ("User-Name", "alice@fiber.example"),
            *PPPOE,
            *NAS,
            *SESSION[:4],
            ("Acct-Input-Octets", 3000000000),
            ("Acct-Input-Gigawords", 2),
            ("Acct-Output-Octets", 123456789),
            ("Acct-Output-Gigawords", 7),
            ("Acct-Input-Packets", 4000000),
            ("Acct-Output-Packets", 9000000),
            ("Acct-Session-Time", 86400),
            ("Acct-Delay-Time", 5),
            ("Event-Timestamp", EVENT_TIME + 86400),
        ],
        {
            "acct_input_bytes": 2 * 2**32 + 3000000000,
            "acct_output_bytes": 7 * 2**32 + 123456789,
            "acct_unique_session_id": hashlib.md5(
                b"alice@fiber.example,81e0000a,10.20.0.1,bras1.pop2,vlan101,15728650"
            ).hexdigest(),
        },
    ),
    "mikrotik_acct_stop": (
        "acct",
        [
            ("Acct-Status-Type", "Stop"),
            ("User-Name", "alice@fiber.example"),
            *PPPOE,
            *NAS,
            *SESSION[:2],
            ("Acct-Input-Octets", 12),
            ("Acct-Output-Octets", 34),
            ("Acct-Session-Time", 90061),
            ("Acct-Terminate-Cause", "Lost-Carrier"),
            ("Event-Timestamp", EVENT_TIME + 90061),
        ],
        {"acct_terminate_cause": 2, "acct_input_bytes": 12},
    ),
    "status_server": ("status", [MA, ("NAS-Identifier", "monitor")], {}),
    "disconnect_request": (
        "disconnect",
        [
            ("User-Name", "alice@fiber.example"),
            ("Acct-Session-Id", "81e0000a"),
            ("Framed-IP-Address", "100.64.3.17"),
            ("Event-Timestamp", EVENT_TIME),
        ],
        {"event_timestamp": EVENT_TIME},
    ),
    "coa_request": (
        "coa",
        [
            ("User-Name", "alice@fiber.example"),
            ("Acct-Session-Id", "81e0000a"),
            ("Mikrotik-Rate-Limit", "5M/20M 10M/40M 4M/16M 10/10"),
            ("Mikrotik-Address-List", "Reject_1"),
            ("Event-Timestamp", EVENT_TIME),
            MA,
        ],
        {},
    ),
}
PASSWORDS = {
    "mikrotik_pppoe_pap_request": "correct horse battery staple",
    "proxied_pap_request": "pw-carol",
    "mikrotik_pppoe_chap_request": "s3cret-chap",
}
CODES = {"auth": 1, "acct": 4, "status": 12, "disconnect": 40, "coa": 43}


def radclient_capture(command: str, text: str) -> bytes:
    """Run radclient against a socket that records the first datagram and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        args = ["radclient", "-r", "1", "-t", "2", "-c", "1", f"127.0.0.1:{port}", command, SECRET]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(text.encode())
        proc.stdin.close()
        try:
            data, _ = sock.recvfrom(4096)
        finally:
            proc.kill()
            proc.wait()
    return data


def radclient_text(name: str, attrs: list[tuple[str, Any]]) -> str:
    lines = []
    for attr, given in attrs:
        value = PASSWORDS[name] if given is None else given  # radclient hides or CHAP-hashes it
        if isinstance(value, dict):
            lines.append(f"{attr} = 0x{value['hex']}")
        elif isinstance(value, int):
            lines.append(f"{attr} = {value}")
        else:
            lines.append(f'{attr} = "{value}"')
    return "\n".join(lines) + "\n"


def expected_attributes(attrs: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for attr, value in attrs:
        if value is None or attr == "Message-Authenticator":
            continue  # hidden or computed: checked through the accessors
        out.setdefault(attr, []).append(value)
    return out


# ---------------------------------------------------------------------------------------------------
# Malformed packets


def attr(attr_type: int, value: bytes) -> bytes:
    return bytes((attr_type, len(value) + 2)) + value


def vsa(vendor: int, sub: bytes) -> bytes:
    return attr(26, struct.pack(">I", vendor) + sub)


def packet(code: int, body: bytes, vector: bytes = b"\x11" * 16, ident: int = 7) -> bytes:
    return struct.pack(">BBH", code, ident, 20 + len(body)) + vector + body


def sign_ma(pkt: bytes) -> bytes:
    """Fill in the Message-Authenticator of an Access-Request (RFC 3579 section 3.2)."""
    at = pkt.index(b"\x50\x12" + bytes(16), 20) + 2
    mac = hmac.digest(SECRET.encode(), pkt, "md5")
    return pkt[:at] + mac + pkt[at + 16 :]


def sign_acct(pkt: bytes) -> bytes:
    digest = hashlib.md5(pkt[:4] + bytes(16) + pkt[20:] + SECRET.encode()).digest()
    return pkt[:4] + digest + pkt[20:]


def malformed(valid: dict[str, bytes]) -> list[dict[str, Any]]:
    pap = valid["mikrotik_pppoe_pap_request"]
    acct = valid["mikrotik_acct_start"]
    user = attr(1, b"mallory")
    ma0 = attr(80, bytes(16))
    cases: list[tuple[str, str, bytes, dict[str, Any]]] = [
        ("short_packet", "19 octets: shorter than the header", pap[:19], {}),
        ("unknown_code", "code 0", b"\x00" + pap[1:], {}),
        ("unknown_code", "code 53", b"\x35" + pap[1:], {}),
        ("unknown_code", "code 255", b"\xff" + pap[1:], {}),
        ("unknown_code", "an Access-Accept sent to the server", b"\x02" + pap[1:], {}),
        ("bad_length", "header Length 19", pap[:2] + b"\x00\x13" + pap[4:], {}),
        ("too_long", "header Length 5000 over UDP (RFC 2865 section 3: 4096)", packet(1, attr(1, b"x") * 2492), {}),
        (
            "truncated",
            "header Length above the octets received",
            pap[:2] + struct.pack(">H", len(pap) + 1) + pap[4:],
            {},
        ),
        ("attr_length", "attribute Length 0", packet(1, b"\x01\x00" + user), {}),
        ("attr_length", "attribute Length 1", packet(1, b"\x01\x01" + user), {}),
        ("attr_overflow", "attribute runs past the packet", packet(1, user + b"\x01\x09abc"), {}),
        ("attr_header", "a 1-octet trailing attribute header", packet(1, user + b"\x01"), {}),
        ("attr_type_zero", "attribute type 0", packet(1, attr(0, b"x") + user), {}),
        ("too_many_attributes", "201 attributes", packet(1, attr(18, b"x") * 201), {}),
        ("bad_ma_length", "Message-Authenticator of 15 octets", packet(1, user + attr(80, bytes(15))), {}),
        ("duplicate_message_authenticator", "two Message-Authenticators", packet(1, ma0 + user + ma0), {}),
        (
            "eap_without_ma",
            "EAP-Message without Message-Authenticator (RFC 3579 3.1)",
            packet(1, user + attr(79, b"\x02\x01\x00\x09\x01bob")),
            {"require_ma": False},
        ),
        ("vsa_short", "Vendor-Specific holding only a Vendor-Id", packet(1, user + attr(26, b"\x00\x00\x3a\x8c")), {}),
        ("vsa_attr_length", "MikroTik sub-attribute with Length 1", packet(1, user + vsa(14988, b"\x08\x01abc")), {}),
        ("vsa_attr_length", "MikroTik VSA with a 1-octet tail", packet(1, user + vsa(14988, b"\x08\x03a\x09")), {}),
        (
            "vsa_overflow",
            "MikroTik sub-attribute overflowing its VSA",
            packet(1, user + vsa(14988, b"\x08\x09abc")),
            {},
        ),
        ("bad_value", "NAS-Port (integer) of 3 octets", packet(1, user + attr(5, b"\x00\x00\x01")), {}),
        ("bad_value", "NAS-IP-Address (ipaddr) of 5 octets", packet(1, user + attr(4, b"\x0a\x00\x00\x01\x00")), {}),
        ("bad_value", "Event-Timestamp (date) of 8 octets", packet(1, user + attr(55, bytes(8))), {}),
        ("bad_value", "tagged Tunnel-Type of Length 3", packet(1, user + attr(64, b"\x01")), {}),
        ("bad_value", "User-Password of 17 octets", packet(1, user + attr(2, bytes(17))), {}),
        ("bad_value", "MS-CHAP2-Response of 49 octets", packet(1, user + vsa(311, attr(25, bytes(49)))), {}),
        (
            "bad_prefix",
            "Framed-IPv6-Prefix with Prefix-Length 129",
            packet(1, user + attr(97, b"\x00\x81" + bytes(16))),
            {},
        ),
        (
            "missing_message_authenticator",
            "Access-Request without Message-Authenticator (require_ma)",
            packet(1, user + attr(2, bytes(16))),
            {},
        ),
        (
            "proxy_state_without_ma",
            "Proxy-State without Message-Authenticator (limit_proxy_state)",
            packet(1, user + attr(2, bytes(16)) + attr(33, b"ps")),
            {"require_ma": False},
        ),
        (
            "missing_message_authenticator",
            "Status-Server without Message-Authenticator (RFC 5997)",
            packet(12, attr(32, b"monitor")),
            {"require_ma": False},
        ),
        (
            "bad_message_authenticator",
            "one User-Name octet changed after signing",
            pap.replace(b"alice@", b"alicE@"),
            {},
        ),
        (
            "bad_message_authenticator",
            "signed with another secret",
            sign_ma(packet(1, ma0 + user)).replace(user, attr(1, b"mallorY")),
            {},
        ),
        (
            "bad_request_authenticator",
            "Accounting-Request with one attribute octet changed",
            acct.replace(b"81e0000a", b"81e0000b"),
            {},
        ),
        (
            "bad_request_authenticator",
            "Disconnect-Request with a zero authenticator",
            valid["disconnect_request"][:4] + bytes(16) + valid["disconnect_request"][20:],
            {},
        ),
        (
            "bad_message_authenticator",
            "Accounting-Request with a forged Message-Authenticator",
            sign_acct(packet(4, attr(40, b"\x00\x00\x00\x01") + attr(80, b"\x01" * 16))),
            {},
        ),
    ]
    return [{"reason": reason, "why": why, "hex": pkt.hex(), "options": options} for reason, why, pkt, options in cases]


def main() -> None:
    valid: dict[str, bytes] = {}
    for name, (command, attrs, accessors) in VECTORS.items():
        data = radclient_capture(command, radclient_text(name, attrs))
        valid[name] = data
        (HERE / f"{name}.hex").write_text(data.hex() + "\n")
        doc = {
            "source": f"radclient 3.2.1 (freeradius-utils), command {command!r}",
            "secret": SECRET,
            "code": CODES[command],
            "attributes": expected_attributes(attrs),
            "accessors": accessors,
        }
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    doc = {"secret": SECRET, "packets": malformed(valid)}
    (HERE / "malformed.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
