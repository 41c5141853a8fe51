"""The MQTT 3.1.1 packets an event publisher needs, as bytes: a sans-IO codec.

Only what :mod:`daemons.events` sends and receives: CONNECT/CONNACK, PUBLISH (QoS 0, 1, 2),
PUBACK, PUBREC/PUBREL/PUBCOMP, PINGREQ/PINGRESP and DISCONNECT (OASIS MQTT 3.1.1, section 3).
No sockets, no asyncio, nothing of lastmile: ``Reader.feed(bytes)`` returns the whole packets
received so far, the ``encode_*`` functions return the bytes to send.

Why not aiomqtt (paho) for publishing: profiled, a QoS 1 publish through it cost about 90 µs
of CPU (one ``send`` system call per message, a Properties, ReasonCode and MessageInfo object
with its lock per message, scans of every pending call on each publish), which caps a daemon
at about 11,000 events/s to mosquitto with nothing else to do. Encoded here, a whole window of
PUBLISH packets goes out in one write (bench/events, docs/benchmarks.md).
"""

from __future__ import annotations

import struct
from enum import IntEnum

PROTOCOL_LEVEL = 4  # MQTT 3.1.1 (section 3.1.2.2)
MAX_REMAINING = 268_435_455  # the largest Remaining Length four bytes encode (section 2.2.3)


class PacketType(IntEnum):
    """Control packet types, the high nibble of the fixed header (section 2.2.1)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


CONNACK_REFUSED = {  # section 3.2.2.3
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


class ProtocolError(Exception):
    """The broker sent bytes that are no MQTT 3.1.1 packet; the connection cannot go on."""


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _string(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return struct.pack("!H", len(value)) + value


def encode_connect(
    client_id: str, *, keepalive: int, username: str | None = None, password: str | None = None, clean: bool = True
) -> bytes:
    """CONNECT (section 3.1); a clean session: the broker keeps nothing of ours between connections."""
    flags = 0x02 if clean else 0
    payload = _string(client_id.encode())
    if username is not None:
        flags |= 0x80
        payload += _string(username.encode())
        if password is not None:
            flags |= 0x40
            payload += _string(password.encode())
    body = _string(b"MQTT") + struct.pack("!BBH", PROTOCOL_LEVEL, flags, keepalive) + payload
    return b"\x10" + _remaining_length(len(body)) + body


def encode_publish(topic: bytes, payload: bytes, qos: int, packet_id: int = 0, *, retain: bool = False) -> bytes:
    """PUBLISH (section 3.3). ``packet_id`` (1-65535) for QoS 1 and 2 only.

    Raises ValueError for what no broker would take: a topic with wildcards or empty, too long
    a topic or payload."""
    if not topic or b"+" in topic or b"#" in topic or b"\0" in topic:
        raise ValueError(f"invalid topic name {topic!r}")
    variable = _string(topic)
    if qos:
        if not 0 < packet_id <= 0xFFFF:
            raise ValueError("a QoS 1 or 2 PUBLISH needs a packet id from 1 to 65535")
        variable += struct.pack("!H", packet_id)
    length = len(variable) + len(payload)
    if length > MAX_REMAINING:
        raise ValueError(f"payload of {len(payload)} bytes is too large for MQTT")
    header = 0x30 | qos << 1 | (1 if retain else 0)
    return bytes((header,)) + _remaining_length(length) + variable + payload


def encode_pubrel(packet_id: int) -> bytes:
    """PUBREL, the second step of a QoS 2 publish (section 3.6); its flags are fixed at 0010."""
    return struct.pack("!BBH", 0x62, 2, packet_id)


def packet_id(body: bytes) -> int:
    """The packet identifier a PUBACK, PUBREC or PUBCOMP carries."""
    if len(body) != 2:
        raise ProtocolError(f"acknowledgement of {len(body)} bytes, not 2")
    (pid,) = struct.unpack("!H", body)
    return int(pid)


def connack_error(body: bytes) -> str | None:
    """None when the CONNACK accepts the connection, else why the broker refused it."""
    if len(body) != 2:
        raise ProtocolError(f"CONNACK of {len(body)} bytes, not 2")
    code = body[1]
    if code == 0:
        return None
    return CONNACK_REFUSED.get(code, f"refused with return code {code}")


class Reader:
    """Splits the byte stream from the broker into packets (fixed header, section 2.2)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[PacketType, int, bytes]]:
        """Add received bytes; return each complete packet as (type, flags, body)."""
        self._buffer += data
        packets: list[tuple[PacketType, int, bytes]] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            length, shift, i, complete = 0, 0, pos + 1, False
            while i < len(buf):
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("remaining length longer than four bytes")
            if not complete or len(buf) - i < length:
                break  # the rest of this packet has not arrived yet
            kind = buf[pos] >> 4
            if kind in (0, 15):
                raise ProtocolError(f"reserved packet type {kind}")
            packets.append((PacketType(kind), buf[pos] & 0x0F, bytes(buf[i : i + length])))
            pos = i + length
        del buf[:pos]
        return packets
