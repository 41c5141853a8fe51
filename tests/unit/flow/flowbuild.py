"""Build NetFlow v5 / v9 / IPFIX datagrams for tests, independently of the decoder.

Written straight from the formats (Cisco v5 export format, RFC 3954 §5, RFC 7011 §3), with
nothing shared with ``flowcollector``, so a bug in the codec is not mirrored here.  Fields
are ``(element, length)`` or ``(element, length, enterprise)``; record values are given as
``{element: value}`` (addresses as text or int).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping, Sequence
from typing import Any

FieldSpec = tuple[int, int] | tuple[int, int, int]

# MikroTik RouterOS Traffic-Flow templates (v9, and IPFIX before 7.x): IPv4 with post-NAT
# addresses and ports (225-228), IPv6 in a separate template (with a 3-byte flow label).
MIKROTIK_V4: list[FieldSpec] = [
    (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4), (10, 4), (14, 4),
    (5, 1), (6, 1), (15, 4), (9, 1), (13, 1), (225, 4), (226, 4), (227, 2), (228, 2)]
MIKROTIK_V6: list[FieldSpec] = [
    (27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4), (10, 4), (14, 4),
    (5, 1), (6, 1), (62, 16), (29, 1), (30, 1), (31, 3)]
# RouterOS 7 IPFIX adds MACs, TTL, TCP details and sys-init-time (160) in every record.
MIKROTIK_IPFIX_V4: list[FieldSpec] = [
    *MIKROTIK_V4, (56, 6), (80, 6), (192, 1), (60, 1), (184, 4), (185, 4), (186, 2), (205, 2),
    (176, 1), (177, 1), (224, 2), (160, 8)]
MIKROTIK_IPFIX_V6: list[FieldSpec] = [*MIKROTIK_V6, (56, 6), (80, 6), (192, 1), (60, 1), (160, 8)]
# nfgen.py's layouts (bench/netflow).
NFGEN_V9: list[FieldSpec] = [(8, 4), (12, 4), (15, 4), (10, 4), (14, 4), (2, 4), (1, 8), (22, 4), (21, 4),
                             (7, 2), (11, 2), (6, 1), (4, 1), (5, 1)]
NFGEN_IPFIX: list[FieldSpec] = [*NFGEN_V9[:7], (152, 8), (153, 8), *NFGEN_V9[9:]]

_ADDRESS_LENGTHS = (4, 16)


def value_bytes(value: Any, length: int) -> bytes:
    """One field value in network byte order."""
    if isinstance(value, bytes):
        return value
    number = int(ipaddress.ip_address(value)) if isinstance(value, str) else int(value)
    return number.to_bytes(length, "big")


def record(fields: Sequence[FieldSpec], values: Mapping[int, Any]) -> bytes:
    """A data record; fields without a value (and enterprise fields) are zeros or empty.  A
    length of 65535 (IPFIX variable length) takes ``bytes`` and writes the short (< 255) or
    long (255 + two bytes) length prefix (RFC 7011 §7)."""
    out = b""
    for spec in fields:
        ie, length = spec[0], spec[1]
        default: int | bytes = b"" if length == 0xFFFF else 0
        enterprise = len(spec) == 3 and spec[2]
        value = default if enterprise else values.get(ie, default)  # enterprise fields: zeros
        if length == 0xFFFF:
            assert isinstance(value, bytes)
            n = len(value)
            out += (bytes([n]) if n < 255 else b"\xff" + n.to_bytes(2, "big")) + value
        else:
            out += value_bytes(value, length)
    return out


def _field_specs(fields: Sequence[FieldSpec]) -> bytes:
    out = b""
    for spec in fields:
        if len(spec) == 3 and spec[2]:
            out += struct.pack("!HHI", spec[0] | 0x8000, spec[1], spec[2])
        else:
            out += struct.pack("!HH", spec[0], spec[1])
    return out


def _set(set_id: int, body: bytes, pad: bool = True) -> bytes:
    padding = b"\0" * (-(len(body) + 4) % 4) if pad else b""
    return struct.pack("!HH", set_id, 4 + len(body) + len(padding)) + body + padding


def template_set(version: int, templates: Sequence[tuple[int, Sequence[FieldSpec]]]) -> bytes:
    """A (v9 id 0 / IPFIX id 2) template set; a template with no fields is a withdrawal."""
    body = b"".join(struct.pack("!HH", tid, len(fields)) + _field_specs(fields) for tid, fields in templates)
    return _set(0 if version == 9 else 2, body, pad=False)


def options_template_set(version: int, tid: int, scope: Sequence[FieldSpec], fields: Sequence[FieldSpec]) -> bytes:
    """An options template set with one template (v9: scope/option lengths in bytes)."""
    if version == 9:
        head = struct.pack("!HHH", tid, 4 * len(scope), 4 * len(fields))
        return _set(1, head + _field_specs(scope) + _field_specs(fields))
    head = struct.pack("!HHH", tid, len(scope) + len(fields), len(scope))
    return _set(3, head + _field_specs(scope) + _field_specs(fields))


def data_set(tid: int, records: Sequence[bytes], pad: bool = True) -> bytes:
    return _set(tid, b"".join(records), pad)


def v5(records: Sequence[Mapping[str, Any]], *, uptime: int, secs: int, nsecs: int = 0, seq: int = 0,
       engine: tuple[int, int] = (0, 0), sampling: int = 0) -> bytes:
    """A v5 datagram; records give src, dst, packets, octets, first, last (and optionally ports)."""
    head = struct.pack("!HHIIIIBBH", 5, len(records), uptime, secs, nsecs, seq, engine[0], engine[1], sampling)
    body = b""
    for r in records:
        body += struct.pack(
            "!4s4s4sHHIIIIHHBBBBHHBBH", value_bytes(r["src"], 4), value_bytes(r["dst"], 4), bytes(4), 1, 2,
            r["packets"], r["octets"], r["first"], r["last"], r.get("sport", 1234), r.get("dport", 80), 0, 0x1B,
            6, 0, 0, 0, 24, 24, 0)
    return head + body


def v9(sets: Sequence[bytes], *, uptime: int, secs: int, seq: int = 0, source_id: int = 0,
       count: int | None = None) -> bytes:
    n = len(sets) if count is None else count
    return struct.pack("!HHIIII", 9, n, uptime, secs, seq, source_id) + b"".join(sets)


def ipfix(sets: Sequence[bytes], *, export: int, seq: int = 0, domain: int = 0) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export, seq, domain) + body
