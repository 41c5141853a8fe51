"""A NAS double for RFC 5176 Dynamic Authorization: CoA-Request and Disconnect-Request over UDP.

:class:`FakeNas` listens on 127.0.0.1 (a free port unless told) in its own thread, so it keeps
answering while a test blocks its event loop (``subprocess.run``, a blocking ``stop()``). For
every datagram it does what a NAS's dynamic-authorization server must do before acting on it:

- the code is CoA-Request (43) or Disconnect-Request (40), the Length is sane;
- the Request Authenticator is MD5(Code+Identifier+Length+16 zero octets+Attributes+secret)
  (RFC 5176, as for an Accounting-Request), checked here independently of ``radiusd.codec``;
- a Message-Authenticator, when present, is HMAC-MD5 keyed with the secret over the packet with
  a zero Request Authenticator and the Message-Authenticator zeroed (RFC 3579 section 3.2, as
  FreeRADIUS computes it for CoA and Disconnect requests), and there is at most one;
- an Event-Timestamp, when present, is within ``event_window`` seconds of now (the replay
  protection RFC 5176 asks a NAS to apply when Event-Timestamp is used).

A packet failing any check is silently discarded (as the RFC says) and listed in ``invalid``
with the reason. A valid one is decoded with ``radiusd.codec.decode_request`` and recorded in
``received`` (every copy, retransmissions included, with its raw bytes), then answered per the
:class:`Policy`: ACK (41/44), NAK (42/45) with an Error-Cause, or nothing; optionally only after
the first N copies of the request went unanswered, and optionally preceded by a forged reply
(one whose Response Authenticator does not verify), as an off-path spoofer would send. Like a
real NAS (RFC 5080 section 2.2.2), a retransmission of a request already answered gets the
same reply again.

What it leaves out compared with a real MikroTik (``/radius incoming``, port 3799):

- No session lookup: it never checks that User-Name / Acct-Session-Id / Framed-IP-Address name a
  live session; it answers per the policy, whatever the request names (a real NAS NAKs a
  session it does not have, e.g. with 503 Session-Context-Not-Found).
- Nothing is applied: no queue gets the new Mikrotik-Rate-Limit, no address goes to a
  Mikrotik-Address-List, no PPP session is torn down, so no Accounting-Stop (or Interim with
  the new state) follows an ACK as it would from a real router.
- No check of which attributes are allowed or required in each request (RFC 5176's table of
  attributes), of NAS-IP-Address / NAS-Identifier identification (403 NAS-Identification-Mismatch),
  or of unsupported attributes (401).
- No per-source client list: any source may send, and only one shared secret is known.
- IPv4 only, no RADIUS/TLS, no Proxy-State handling beyond what the codec echoes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Literal

from radiusd.codec import Code, CodecError, Value, decode_request, encode_reply

_ZERO16 = bytes(16)
_MESSAGE_AUTHENTICATOR = 80
_EVENT_TIMESTAMP = 55
NAMES: dict[int, str] = {Code.COA_REQUEST: "CoA-Request", Code.DISCONNECT_REQUEST: "Disconnect-Request"}
_ACK = {Code.COA_REQUEST: Code.COA_ACK, Code.DISCONNECT_REQUEST: Code.DISCONNECT_ACK}
_NAK = {Code.COA_REQUEST: Code.COA_NAK, Code.DISCONNECT_REQUEST: Code.DISCONNECT_NAK}


@dataclass(frozen=True)
class Policy:
    """How the double answers. ``silent_first``: copies of each request left unanswered first."""

    answer: Literal["ack", "nak", "silent"] = "ack"
    error_cause: int = 503  # Session-Context-Not-Found
    silent_first: int = 0
    spoof_first: bool = False  # send a reply with a broken Response Authenticator before the real one

    @classmethod
    def ack(cls) -> Policy:
        return cls("ack")

    @classmethod
    def nak(cls, error_cause: int = 503) -> Policy:
        return cls("nak", error_cause)

    @classmethod
    def silent(cls) -> Policy:
        """Never answer: for the requester's retransmissions and timeout."""
        return cls("silent")

    @classmethod
    def ack_after(cls, silent: int) -> Policy:
        """Ignore the first ``silent`` copies of each request, ACK the next one."""
        return cls("ack", silent_first=silent)


@dataclass(frozen=True)
class Received:
    """One datagram that passed the checks (each retransmission is its own entry)."""

    at: float  # time.monotonic() on arrival
    source: tuple[str, int]
    data: bytes
    code: int
    identifier: int
    attributes: dict[str, list[Value]]
    has_message_authenticator: bool
    copy: int  # 1 the first time these bytes came from this source, 2 for the first retransmission, ...
    reply: bytes | None  # what was sent back (None: silent)

    @property
    def kind(self) -> str:
        return NAMES.get(self.code, str(self.code))

    def get(self, name: str) -> Value | None:
        """The first value of attribute ``name`` (decoded as ``Packet.attributes()`` does)."""
        values = self.attributes.get(name)
        return values[0] if values else None


@dataclass
class _Seen:
    copies: int = 0
    reply: bytes | None = None


class FakeNas:
    """A NAS's RFC 5176 server on UDP. Use as a context manager, or ``start()`` / ``close()``."""

    def __init__(self, secret: bytes, policy: Policy | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 event_window: float = 300.0) -> None:
        self.secret = secret
        self.policy = policy or Policy()
        self.event_window = event_window
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.address: tuple[str, int] = self._sock.getsockname()
        self._received: list[Received] = []
        self._invalid: list[tuple[bytes, str]] = []
        self._seen: dict[tuple[tuple[str, int], bytes], _Seen] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fake-nas-{self.port}", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    # -- life ------------------------------------------------------------------------------------------

    def start(self) -> FakeNas:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> FakeNas:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- what happened ---------------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    @property
    def invalid(self) -> list[tuple[bytes, str]]:
        """Datagrams discarded, with the reason (``bad_request_authenticator``, ...)."""
        with self._changed:
            return list(self._invalid)

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``count`` requests (copies included) are recorded; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the NAS double got {len(self._received)} request(s), not {count}, "
                                         f"in {timeout} s (discarded: {[r for _, r in self._invalid]})")
                self._changed.wait(left)
            return list(self._received)

    async def wait_async(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        return await asyncio.to_thread(self.wait, count, timeout)

    # -- the server ------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self._handle(data, source)

    def _handle(self, data: bytes, source: tuple[str, int]) -> None:
        problem = self.check(data)
        if problem:
            with self._changed:
                self._invalid.append((data, problem))
                self._changed.notify_all()
            return
        try:
            request = decode_request(data, self.secret, require_ma=False)
        except CodecError as e:  # pragma: no cover - check() above is stricter on authenticity
            with self._changed:
                self._invalid.append((data, e.reason))
                self._changed.notify_all()
            return
        policy = self.policy
        seen = self._seen.setdefault((source, data), _Seen())
        seen.copies += 1
        reply = seen.reply
        if reply is None and policy.answer != "silent" and seen.copies > policy.silent_first:
            if policy.answer == "ack":
                reply = encode_reply(request, _ACK[Code(request.code)])
            else:
                reply = encode_reply(request, _NAK[Code(request.code)], [("Error-Cause", policy.error_cause)])
            seen.reply = reply
        record = Received(time.monotonic(), source, data, request.code, request.identifier, request.attributes(),
                          request.has_message_authenticator, seen.copies, reply)
        with self._changed:
            self._received.append(record)
            self._changed.notify_all()
        if reply is not None:
            if policy.spoof_first and seen.copies == policy.silent_first + 1:
                forged = reply[:4] + bytes(b ^ 0xFF for b in reply[4:20]) + reply[20:]
                self._sock.sendto(forged, source)
            self._sock.sendto(reply, source)

    def check(self, data: bytes) -> str | None:
        """Why a NAS would discard ``data`` (None: authentic). Independent of radiusd.codec."""
        if len(data) < 20:
            return "short_packet"
        code, _identifier, length = struct.unpack(">BBH", data[:4])
        if code not in NAMES:
            return "unknown_code"
        if length < 20 or length > 4096 or length > len(data):
            return "bad_length"
        packet = data[:length]
        expected = hashlib.md5(packet[:4] + _ZERO16 + packet[20:] + self.secret).digest()
        if not hmac.compare_digest(expected, packet[4:20]):
            return "bad_request_authenticator"
        ma_at = None
        pos = 20
        while pos < length:
            if pos + 2 > length or packet[pos + 1] < 2 or pos + packet[pos + 1] > length:
                return "bad_attribute"
            kind, size = packet[pos], packet[pos + 1]
            if kind == _MESSAGE_AUTHENTICATOR:
                if size != 18 or ma_at is not None:
                    return "bad_message_authenticator"
                ma_at = pos + 2
            elif kind == _EVENT_TIMESTAMP:
                if size != 6:
                    return "bad_attribute"
                stamp = int.from_bytes(packet[pos + 2:pos + 6], "big")
                if abs(time.time() - stamp) > self.event_window:
                    return "event_timestamp_outside_window"
            pos += size
        if ma_at is not None:
            zeroed = packet[:4] + _ZERO16 + packet[20:ma_at] + _ZERO16 + packet[ma_at + 16:]
            if not hmac.compare_digest(hmac.digest(self.secret, zeroed, "md5"), packet[ma_at:ma_at + 16]):
                return "bad_message_authenticator"
        return None
