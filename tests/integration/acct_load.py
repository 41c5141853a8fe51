"""A NAS's accounting on a raw socket, sessions it reports, a load of them, and the check that
every acknowledged record is in the database exactly once (the resilience tests' yardstick)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from radiusd.codec import AcctStatus, Code, CodecError, decode_response, derive_unique_session_id, encode_request
from tests.integration.radius_env import SECRET

NAS_IP = "127.0.0.1"


# -- a NAS sending accounting --------------------------------------------------------------------------


class AcctClient:
    """One NAS's accounting client on a raw socket: a request, then its Accounting-Response or not."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for a burst's answers
        self.sock.bind((NAS_IP, 0))
        self._ids = itertools.count()

    def packet(self, attributes: list[tuple[str, int | str]]) -> bytes:
        return encode_request(Code.ACCOUNTING_REQUEST, next(self._ids) % 256, attributes, SECRET)

    def exchange(self, packet: bytes, timeout: float) -> bool:
        """Send ``packet``; True when an authentic Accounting-Response to it comes within ``timeout``."""
        self.sock.sendto(packet, (NAS_IP, self.port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return False
            if len(data) < 20 or data[1] != packet[1]:
                continue  # a late answer to an earlier request
            try:
                decode_response(data, packet[4:20], SECRET, request_code=Code.ACCOUNTING_REQUEST, require_ma=False)
            except CodecError:
                continue  # an earlier request's late answer with a reused Identifier
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@dataclass
class Sent:
    status: int
    session_time: int
    octets: int
    acked: bool
    at: float


@dataclass
class Session:
    """One subscriber session as the NAS reports it: Start, Interim-Updates, Stop."""

    user: str
    session_id: str
    start: int  # Unix time the session started (Event-Timestamp = start + Acct-Session-Time)
    length: int = 6  # requests: a Start, Interim-Updates, a Stop; 1: a Start only (the NAS still runs it)
    sent: list[Sent] = field(default_factory=list)

    @property
    def unique_id(self) -> str:
        return derive_unique_session_id(acct_session_id=self.session_id, user_name=self.user, nas_ip_address=NAS_IP)

    @property
    def done(self) -> bool:
        return len(self.sent) >= self.length

    def next(self) -> tuple[int, int, int]:
        n = len(self.sent)
        status = (AcctStatus.START if n == 0 else AcctStatus.STOP if n == self.length - 1
                  else AcctStatus.INTERIM_UPDATE)
        return status, 60 * n, 1000 * n * (1 + int(self.session_id[-2:], 16))

    def attributes(self, status: int, session_time: int, octets: int) -> list[tuple[str, int | str]]:
        attrs: list[tuple[str, int | str]] = [
            ("User-Name", self.user), ("Acct-Status-Type", status), ("Acct-Session-Id", self.session_id),
            ("NAS-IP-Address", NAS_IP), ("Event-Timestamp", self.start + session_time),
            ("Acct-Session-Time", session_time), ("Acct-Input-Octets", octets), ("Acct-Output-Octets", 3 * octets),
            ("Acct-Input-Packets", octets // 100), ("Acct-Output-Packets", octets // 40)]
        if status == AcctStatus.STOP:
            attrs.append(("Acct-Terminate-Cause", "User-Request"))
        return attrs


def new_session(n: int, length: int = 6) -> Session:
    return Session(f"load{n:06d}", f"{n:08x}", int(time.time()) - 3600, length)


def run_load(port: int, stop: threading.Event, sessions: list[Session], first: int = 0, interval: float = 0.015,
             concurrent: int = 12, limit: float = 30.0) -> None:
    """Send the accounting of ``concurrent`` sessions round robin until ``stop`` (or ``limit``
    seconds), one request at a time (each waits for its answer, 1 s at most), as a NAS with one
    outstanding request does. A third of the sessions get only their Start in that time: a
    record that nothing later overwrites, so that losing it shows."""
    client = AcctClient(port)
    numbers = itertools.count(first)

    def new() -> Session:
        n = next(numbers)
        return new_session(n, 1 if n % 3 == 0 else 6)

    active = [new() for _ in range(concurrent)]
    sessions.extend(active)
    end = time.monotonic() + limit
    tick = time.monotonic()
    try:
        for turn in itertools.count():
            if stop.is_set() or time.monotonic() >= end:
                return
            slot = turn % concurrent
            session = active[slot]
            status, session_time, octets = session.next()
            acked = client.exchange(client.packet(session.attributes(status, session_time, octets)), 1.0)
            session.sent.append(Sent(status, session_time, octets, acked, time.monotonic()))
            if session.done:
                active[slot] = new()
                sessions.append(active[slot])
            tick += interval
            time.sleep(max(0.0, tick - time.monotonic()))
    finally:
        client.close()


async def assert_recorded_exactly_once(conn: asyncpg.Connection, sessions: list[Session]) -> int:
    """Every session with an acknowledged request: one row, counters of its last acknowledged
    request (or of a later one that got no answer but may have been written), stopped if its
    Stop was acknowledged. Returns how many sessions were checked."""
    rows = {r["acct_session_id"]: r for r in await conn.fetch(
        "SELECT acct_session_id, acct_unique_id, started_at, stopped_at, terminate_cause, session_time_s, "
        "input_octets, output_octets, input_packets, output_packets FROM radius_sessions")}
    async def counts(sql: str) -> dict[str, int]:
        return {key: n for key, n in await conn.fetch(sql)}

    per_uid = await counts("SELECT acct_unique_id, count(*) FROM radius_sessions GROUP BY 1")
    in_index = await counts("SELECT acct_unique_id, count(*) FROM radius_session_index GROUP BY 1")
    rows_per_session_id = await counts("SELECT acct_session_id, count(*) FROM radius_sessions GROUP BY 1")
    checked = 0
    for s in sessions:
        acked = [i for i, m in enumerate(s.sent) if m.acked]
        if not acked:
            continue
        checked += 1
        where = f"session {s.session_id}: sent {s.sent}"
        assert rows_per_session_id.get(s.session_id) == 1, where
        assert per_uid.get(s.unique_id) == 1 and in_index.get(s.unique_id) == 1, where
        row = rows[s.session_id]
        assert row["acct_unique_id"] == s.unique_id, where
        assert row["started_at"] == datetime.fromtimestamp(s.start, UTC), where
        possible = [s.sent[i] for i in range(acked[-1], len(s.sent)) if i == acked[-1] or not s.sent[i].acked]
        assert any((row["session_time_s"], row["input_octets"], row["output_octets"], row["input_packets"],
                    row["output_packets"]) == (m.session_time, m.octets, 3 * m.octets, m.octets // 100,
                                                m.octets // 40) for m in possible), (where, dict(row))
        stop = next((m for m in s.sent if m.status == AcctStatus.STOP), None)
        if stop is not None and stop.acked:
            assert row["stopped_at"] == datetime.fromtimestamp(s.start + stop.session_time, UTC), where
            assert row["terminate_cause"] == "User-Request", where
        elif stop is None:
            assert row["stopped_at"] is None, where
    return checked


@contextlib.asynccontextmanager
async def nas_load(port: int, clients: int = 3) -> AsyncIterator[list[Session]]:
    """``clients`` NAS-like accounting clients (``run_load``) sending while the block runs, so that
    the writer commits (and loses, if it would) several at once; the list it yields holds every
    session they sent once the block is over."""
    stop = threading.Event()
    loads: list[tuple[threading.Thread, list[Session]]] = []
    for k in range(clients):
        sessions: list[Session] = []
        thread = threading.Thread(target=run_load, args=(port, stop, sessions, 100_000 * k), daemon=True)
        thread.start()
        loads.append((thread, sessions))
    sent: list[Session] = []
    try:
        yield sent
    finally:
        stop.set()
        for thread, _ in loads:
            await asyncio.to_thread(thread.join, 5)
    assert not any(thread.is_alive() for thread, _ in loads)
    sent.extend(s for _, part in loads for s in part)
