"""An emulated BRAS for the auth storm (storm.py): it reboots, sends Accounting-On, and then
every subscriber's router dials at once.

What it does, as a NAS does it:

* **Accounting-On** first (Acct-Status-Type 7, Event-Timestamp now, Acct-Session-Id "00000000"
  as Cisco sends it), retransmitted like any request until it is acknowledged; no subscriber
  dials before that (the server closes the NAS's old sessions, so Simultaneous-Use lets the new
  ones in).
* Then every subscriber is ready to dial at once. The BRAS keeps at most ``inflight`` requests
  outstanding to the server (auth and accounting together, like a NAS's outstanding-request
  limit); Accounting-Starts go before new dials. A subscriber sends a PAP Access-Request (the
  attributes of ``workload.auth_attrs``, Message-Authenticator first); for its Access-Accept
  the BRAS sends an Accounting-Start carrying the Accept's Framed-IP-Address (or, without one,
  the address of the NAS's own pool, ``Subscriber.session_ip``) and the same Acct-Session-Id;
  when the Start is acknowledged the subscriber is **online**.
* Every request is retransmitted unchanged (same identifier and authenticator, as RFC 5080
  expects) after ``timeout_s`` without a reply, ``tries`` sends in all; after the last one it is
  **lost**. A lost or rejected Access-Request makes the router dial again ``redial_s`` later
  (a new request); a lost Accounting-Start is sent again ``redial_s`` later (a new request of
  the same session: the NAS keeps its accounting until it is acknowledged).

Requests are encoded before the clock starts; at send time only the identifier (and for a
Start the address and Event-Timestamp) is patched in and the authenticator recomputed (one
HMAC-MD5 or MD5), so the generator costs little next to the servers. 8 UDP sockets per server
port give 2,048 identifiers each; a freed identifier goes to the back of the queue, so a reply
that arrives after its request was given up cannot be taken for the answer to a newer one (and
if it ever is, its Response Authenticator does not match, and it is counted as invalid).

The result has the time of every subscriber's Accept and online moment (seconds after the
Accounting-On was sent), the counters, and a sample per ``sample_s`` of the running totals
(plus the server's and PostgreSQL's CPU seconds, from a callback).
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import radpkt
import workload
from radpkt import Attrs

AUTH, ACCT = 0, 1
ACCOUNTING_ON = -1  # the "subscriber" of the Accounting-On request
IDENTIFIERS = 256


@dataclass(frozen=True)
class Options:
    inflight: int = 256  # most requests outstanding at once (auth + accounting)
    timeout_s: float = 3.0  # retransmit after this long without a reply
    tries: int = 3  # sends of one request, the first included
    redial_s: float = 10.0  # a router dials again this long after a lost or rejected login
    limit_s: float = 600.0  # give up when not everybody is online by then
    sample_s: float = 1.0  # timeline resolution
    sockets: int = 8  # per server port


@dataclass
class Sample:
    """Running totals at ``t`` seconds after the Accounting-On was sent."""

    t: float
    online: int
    accepted: int
    rejected: int
    auth_sent: int  # first sends of Access-Requests
    acct_sent: int
    retransmits: int  # all kinds, the Accounting-On's included
    lost: int  # both kinds
    in_flight: int
    server_cpu_s: float
    pg_cpu_s: float


@dataclass
class Result:
    subscribers: int
    on_acked_s: float  # Accounting-On sent → its Accounting-Response
    elapsed_s: float  # Accounting-On sent → the last subscriber online (or the limit)
    online_at: list[float]  # per subscriber: seconds after the Accounting-On; -1 if never
    accept_at: list[float]  # per subscriber: its (last) Access-Accept
    accepted: int = 0
    rejected: int = 0
    auth_sent: int = 0
    acct_sent: int = 0
    auth_retransmits: int = 0
    acct_retransmits: int = 0  # of Starts (or Interim-Updates)
    on_retransmits: int = 0  # of the Accounting-On
    auth_lost: int = 0
    acct_lost: int = 0
    redials: int = 0  # Access-Requests sent again after a loss or a reject
    invalid: int = 0  # replies with a wrong Response Authenticator
    stray: int = 0  # replies for nothing outstanding (after the request was given up)
    subscribers_retransmitted: int = 0  # subscribers with at least one retransmission or loss
    pool_addresses: int = 0  # Accepts of subscribers without a static address that carried a Framed-IP-Address
    samples: list[Sample] = field(default_factory=list)

    @property
    def online(self) -> int:
        return sum(1 for t in self.online_at if t >= 0)

    @property
    def requests(self) -> int:
        """Requests sent, first sends only (the Accounting-On included)."""
        return self.auth_sent + self.acct_sent + 1


class _Request:
    __slots__ = ("kind", "packet", "slot", "sub", "tries")

    def __init__(self, kind: int, sub: int, packet: bytes, slot: tuple[int, int]) -> None:
        self.kind, self.sub, self.packet, self.slot, self.tries = kind, sub, packet, slot, 1


def _encode_each(attrs: Attrs, secret: bytes, authenticator: bytes) -> tuple[bytearray, dict[str, int]]:
    """The attributes encoded in order, and where each one's value starts (from the packet's start)."""
    body, offsets = bytearray(), {}
    for pair in attrs:
        offsets[pair[0]] = 20 + len(body) + 2
        body += radpkt.encode_attrs([pair], secret, authenticator)
    return body, offsets


def _replace(attrs: Attrs, name: str, value: str | int) -> Attrs:
    return [(n, value if n == name else v) for n, v in attrs]


def _framed_ip(reply: bytes) -> bytes | None:
    """The Framed-IP-Address (attribute 8) of a reply, as 4 bytes."""
    i, end = 20, len(reply)
    while i + 2 <= end:
        kind, length = reply[i], reply[i + 1]
        if length < 2:
            return None
        if kind == 8 and length == 6:
            return reply[i + 2 : i + 6]
        i += length
    return None


class Bras:
    def __init__(
        self,
        host: str,
        auth_port: int,
        acct_port: int,
        secret: str,
        subscribers: list[workload.Subscriber],
        options: Options,
        session_prefix: str,
        cpu: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0),
    ) -> None:
        self.secret = secret.encode()
        self.subs = subscribers
        self.opts = options
        self.prefix = session_prefix
        self.cpu = cpu
        self.socks: list[list[socket.socket]] = [[], []]
        for kind, port in ((AUTH, auth_port), (ACCT, acct_port)):
            for _ in range(options.sockets):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                s.bind((host, 0))
                s.connect((host, port))
                s.setblocking(False)
                self.socks[kind].append(s)
        self.free: list[deque[tuple[int, int]]] = [
            deque((s, i) for i in range(IDENTIFIERS) for s in range(options.sockets)) for _ in (AUTH, ACCT)
        ]
        self.pending: list[list[list[_Request | None]]] = [
            [[None] * IDENTIFIERS for _ in range(options.sockets)] for _ in (AUTH, ACCT)
        ]
        self.dials = [0] * len(subscribers)  # dials made per subscriber
        self.touched = bytearray(len(subscribers))  # 1: retransmitted or lost at least once
        self.address = [b""] * len(subscribers)  # the address of each subscriber's Start
        self.auth_packets: list[bytes] = []
        self.start_packets: list[bytes] = []
        #: per subscriber: where its Start's Framed-IP-Address and Event-Timestamp values are
        self.start_offsets: list[tuple[int, ...]] = [(0, 0)] * len(subscribers)
        self.started = [0] * len(subscribers)  # Unix time of each subscriber's last Start
        self.interims = False  # the accounting packets are Interim-Updates (prepare_interims)

    # -- packets -------------------------------------------------------------------------------

    def session_id(self, k: int) -> str:
        return f"{self.prefix}{k:06x}-{self.dials[k]}"

    def _auth_packet(self, k: int) -> bytes:
        """Subscriber k's Access-Request for its current dial, identifier 0 (re-signed when sent)."""
        attrs = _replace(workload.auth_attrs(self.subs[k], 0), "Acct-Session-Id", self.session_id(k))
        return radpkt.access_request(0, attrs, self.secret)

    def _start_packet(self, k: int) -> bytes:
        """Subscriber k's Accounting-Start, with its address and Event-Timestamp patched when sent."""
        sub = self.subs[k]
        attrs = workload.acct_attrs(sub, self.session_id(k), 0, 1, 0)
        body, offsets = _encode_each(attrs, self.secret, bytes(16))
        self.start_offsets[k] = (offsets["Framed-IP-Address"], offsets["Event-Timestamp"])
        self.address[k] = socket.inet_aton(sub.session_ip)
        return struct.pack(">BBH", radpkt.ACCOUNTING_REQUEST, 0, 20 + len(body)) + bytes(16) + bytes(body)

    def prepare(self) -> None:
        """Encode every subscriber's first Access-Request and Start (before the clock starts)."""
        self.auth_packets = [self._auth_packet(k) for k in range(len(self.subs))]
        self.start_packets = [self._start_packet(k) for k in range(len(self.subs))]

    def _sign_auth(self, template: bytes, ident: int) -> bytes:
        pkt = bytearray(template)
        pkt[1] = ident
        pkt[22:38] = bytes(16)
        pkt[22:38] = hmac.new(self.secret, pkt, hashlib.md5).digest()
        return bytes(pkt)

    def _sign_acct(self, pkt: bytearray, ident: int) -> bytes:
        pkt[1] = ident
        pkt[4:20] = bytes(16)
        pkt[4:20] = hashlib.md5(bytes(pkt) + self.secret).digest()
        return bytes(pkt)

    def _start_for(self, k: int, ident: int) -> bytes:
        """Subscriber k's Start (or, after prepare_interims, its Interim-Update) as sent now."""
        pkt = bytearray(self.start_packets[k])
        now = int(time.time())
        ip_at, ts_at, *session_time_at = self.start_offsets[k]
        pkt[ip_at : ip_at + 4] = self.address[k]
        pkt[ts_at : ts_at + 4] = struct.pack(">I", now)
        if session_time_at:
            pkt[session_time_at[0] : session_time_at[0] + 4] = struct.pack(">I", max(0, now - self.started[k]))
        else:
            self.started[k] = now
        return self._sign_acct(pkt, ident)

    def prepare_interims(self) -> None:
        """After a storm: every subscriber's next accounting request is an Interim-Update of its
        session (the same Acct-Session-Id and address, counters of 300 s of traffic; Event-Timestamp
        and Acct-Session-Time as sent), for :meth:`run` with ``interims=True``."""
        for k, sub in enumerate(self.subs):
            attrs = workload.acct_attrs(sub, self.session_id(k), 1, 2, 0)
            body, at = _encode_each(attrs, self.secret, bytes(16))
            self.start_offsets[k] = (at["Framed-IP-Address"], at["Event-Timestamp"], at["Acct-Session-Time"])
            header = struct.pack(">BBH", radpkt.ACCOUNTING_REQUEST, 0, 20 + len(body))
            self.start_packets[k] = header + bytes(16) + bytes(body)
        self.touched = bytearray(len(self.subs))
        self.interims = True

    def _accounting_on(self, ident: int) -> bytes:
        attrs: Attrs = [
            ("Acct-Status-Type", "Accounting-On"),
            ("NAS-IP-Address", workload.NAS_IP),
            ("NAS-Identifier", workload.NAS_IDENTIFIER),
            ("Acct-Session-Id", "00000000"),
            ("Acct-Delay-Time", 0),
            ("Event-Timestamp", int(time.time())),
        ]
        return radpkt.accounting_request(ident, attrs, self.secret)

    # -- the storm -----------------------------------------------------------------------------

    def run(self) -> Result:
        """Accounting-On, then everybody dials; returns when all are online or at ``limit_s``.
        After :meth:`prepare_interims`: every subscriber's Interim-Update at once, no Accounting-On
        and no logins ("online" is then: its Interim-Update acknowledged)."""
        if not self.auth_packets:
            self.prepare()
        n = len(self.subs)
        res = Result(n, -1.0, 0.0, [-1.0] * n, [-1.0] * n)
        opts = self.opts
        timers: deque[tuple[float, _Request, int]] = deque()  # (deadline, request, its tries then)
        delayed: deque[tuple[float, int, int]] = deque()  # (due, subscriber, kind)
        dials: deque[int] = deque()
        starts: deque[int] = deque()
        in_flight = 0
        selector = selectors.DefaultSelector()
        for kind in (AUTH, ACCT):
            for i, s in enumerate(self.socks[kind]):
                selector.register(s, selectors.EVENT_READ, (kind, i))
        gc.collect()
        gc.disable()  # a full collection over 100,000 subscribers' packets would stall the BRAS

        def send(kind: int, k: int) -> None:
            nonlocal in_flight
            slot = self.free[kind].popleft()
            ident = slot[1]
            if kind == AUTH:
                packet = self._sign_auth(self.auth_packets[k], ident)
                res.auth_sent += 1
            elif k == ACCOUNTING_ON:
                packet = self._accounting_on(ident)
            else:
                packet = self._start_for(k, ident)
                res.acct_sent += 1
            request = _Request(kind, k, packet, slot)
            self.pending[kind][slot[0]][ident] = request
            self.socks[kind][slot[0]].send(packet)
            timers.append((time.perf_counter() + opts.timeout_s, request, 1))
            in_flight += 1

        def release(request: _Request) -> None:
            nonlocal in_flight
            s, ident = request.slot
            self.pending[request.kind][s][ident] = None
            self.free[request.kind].append(request.slot)
            in_flight -= 1

        def received(kind: int, sock: int, reply: bytes, now: float) -> None:
            if len(reply) < 20:
                res.invalid += 1
                return
            request = self.pending[kind][sock][reply[1]]
            if request is None:
                res.stray += 1
                return
            if not radpkt.reply_ok(reply, request.packet, self.secret):
                res.invalid += 1
                return
            release(request)
            k, t = request.sub, now - t0
            if kind == ACCT:
                if k == ACCOUNTING_ON:
                    res.on_acked_s = t
                    dials.extend(range(n))
                elif res.online_at[k] < 0:
                    res.online_at[k] = t
                    online[0] += 1
            elif reply[0] == radpkt.ACCESS_ACCEPT:
                res.accepted += 1
                res.accept_at[k] = t
                address = _framed_ip(reply)
                if address is not None:
                    self.address[k] = address
                    if not self.subs[k].ipv4:
                        res.pool_addresses += 1
                starts.append(k)
            else:
                res.rejected += 1
                delayed.append((now + opts.redial_s, k, AUTH))

        def expire(now: float) -> None:
            while timers and timers[0][0] <= now:
                _, request, tries = timers.popleft()
                s, ident = request.slot
                if self.pending[request.kind][s][ident] is not request or request.tries != tries:
                    continue  # answered (or retransmitted since: a newer timer follows)
                if request.sub >= 0:
                    self.touched[request.sub] = 1
                if request.tries < opts.tries:
                    request.tries += 1
                    self.socks[request.kind][s].send(request.packet)
                    timers.append((now + opts.timeout_s, request, request.tries))
                    if request.kind == AUTH:
                        res.auth_retransmits += 1
                    elif request.sub == ACCOUNTING_ON:
                        res.on_retransmits += 1
                    else:
                        res.acct_retransmits += 1
                    continue
                release(request)
                if request.kind == AUTH:
                    res.auth_lost += 1
                else:
                    res.acct_lost += 1
                delayed.append((now + opts.redial_s, request.sub, request.kind))

        def due(now: float) -> None:
            while delayed and delayed[0][0] <= now:
                _, k, kind = delayed.popleft()
                if k == ACCOUNTING_ON:
                    send(ACCT, ACCOUNTING_ON)
                elif kind == AUTH:
                    self.dials[k] += 1
                    res.redials += 1
                    self.auth_packets[k] = self._auth_packet(k)
                    self.start_packets[k] = self._start_packet(k)
                    dials.append(k)
                else:
                    starts.append(k)

        def sample(now: float) -> None:
            server_cpu, pg_cpu = self.cpu()
            res.samples.append(Sample(
                round(now - t0, 3), online[0], res.accepted, res.rejected, res.auth_sent, res.acct_sent,
                res.auth_retransmits + res.acct_retransmits + res.on_retransmits, res.auth_lost + res.acct_lost,
                in_flight,
                server_cpu - cpu0[0], pg_cpu - cpu0[1],
            ))  # fmt: skip

        online = [0]
        window = min(opts.inflight, opts.sockets * IDENTIFIERS)  # never more than there are identifiers
        cpu0 = self.cpu()
        t0 = time.perf_counter()
        next_sample = t0
        if self.interims:
            res.on_acked_s = 0.0
            starts.extend(range(n))
        else:
            send(ACCT, ACCOUNTING_ON)
        try:
            while True:
                now = time.perf_counter()
                expire(now)
                due(now)
                while in_flight < window and (starts or dials):
                    if starts:
                        send(ACCT, starts.popleft())
                    else:
                        send(AUTH, dials.popleft())
                if now >= next_sample:
                    sample(now)
                    next_sample += opts.sample_s
                if online[0] == n or now - t0 > opts.limit_s:
                    break
                wake = min(
                    next_sample, timers[0][0] if timers else next_sample, delayed[0][0] if delayed else next_sample
                )
                for key, _ in selector.select(max(0.0, wake - time.perf_counter())):
                    kind, i = key.data
                    sock = self.socks[kind][i]
                    while True:
                        try:
                            reply = sock.recv(4096)
                        except (BlockingIOError, ConnectionRefusedError):
                            break
                        received(kind, i, reply, time.perf_counter())
        finally:
            gc.enable()
            selector.close()
        end = time.perf_counter()
        sample(end)
        res.elapsed_s = (max(res.online_at) if online[0] == n else end - t0) if n else 0.0
        res.subscribers_retransmitted = sum(self.touched)
        return res

    def close(self) -> None:
        for socks in self.socks:
            for s in socks:
                s.close()
