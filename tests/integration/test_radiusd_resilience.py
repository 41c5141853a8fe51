"""radiusd when things break: PostgreSQL crashing under load, SIGTERM mid-burst, a restart with
a full spool, a full disk.

The rule under test (docs/architecture.md, RFC 2866 section 4.1): an Accounting-Response is sent
only for a record that is committed, or fsync'ed to the spool and replayed later; what cannot be
recorded gets no answer, so the NAS keeps it and retransmits.

The tests that take PostgreSQL away run their own durable server (never the session's shared
one), started once for this module; each test gets its own database on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from daemons import db
from daemons.pgembed import EmbeddedPostgres
from radiusd.codec import AcctStatus, Code, CodecError, decode_response, derive_unique_session_id, encode_request
from tests.integration.conftest import crash
from tests.integration.radius_env import SECRET, Radiusd, add_nas, eventually, start_radiusd

NAS_IP = "127.0.0.1"
_databases = itertools.count()


@pytest.fixture
def daemons() -> Iterator[list[Radiusd]]:
    started: list[Radiusd] = []
    yield started
    for daemon in started:
        daemon.stop()


async def start(db_url: str, tmp_path: Path, daemons: list[Radiusd], **settings: str) -> Radiusd:
    daemon = await asyncio.to_thread(lambda: start_radiusd(db_url, tmp_path, **settings))
    daemons.append(daemon)
    return daemon


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


# -- the tests ----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_postgresql_crash_under_load_loses_no_acknowledged_record(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, daemons: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, daemons)
    stop = threading.Event()
    # Three NAS-like clients, so that the writer commits (and loses, if it would) several at once.
    loads: list[tuple[threading.Thread, list[Session]]] = []
    for k in range(3):
        sessions: list[Session] = []
        thread = threading.Thread(target=run_load, args=(daemon.acct_port, stop, sessions, 100_000 * k), daemon=True)
        thread.start()
        loads.append((thread, sessions))
    try:
        await asyncio.sleep(2.0)
        down_at = time.monotonic()
        await asyncio.to_thread(crash, own_pg)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(own_pg.start)  # crash recovery first
        up_at = time.monotonic()
        await asyncio.sleep(2.0)  # load goes on while the spool drains behind it
    finally:
        stop.set()
        for thread, _ in loads:
            await asyncio.to_thread(thread.join, 5)
    assert not any(thread.is_alive() for thread, _ in loads)
    sessions = [s for _, part in loads for s in part]

    # Acknowledged from the spool while PostgreSQL was away, then replayed.
    spooled = daemon.metric("lastmile_radiusd_spooled_total")
    assert spooled > 0
    await eventually(lambda: daemon.metric("lastmile_radiusd_spool_records") == 0, timeout=20)
    assert daemon.metric("lastmile_radiusd_replayed_total") == spooled
    assert daemon.proc.poll() is None, "\n".join(daemon.output)

    sent = [m for s in sessions for m in s.sent]
    during = [m for m in sent if down_at <= m.at <= up_at]
    after = [m for m in sent if m.at > up_at]
    unanswered = [m for m in sent if not m.acked]
    # The outage costs the NAS nothing: answers keep coming from the spool, and after it.
    assert during and all(m.acked for m in during), (len(during), len([m for m in during if not m.acked]))
    assert after and all(m.acked for m in after), (len(after), len([m for m in after if not m.acked]))
    assert len(unanswered) <= len(sent) // 50, unanswered  # a request caught in the crash itself, at most

    conn = await db.connect(own_db)
    try:
        checked = await assert_recorded_exactly_once(conn, sessions)
    finally:
        await conn.close()
    assert checked >= 100 and sum(s.done and s.length > 1 for s in sessions) >= 30


async def test_sigterm_answers_what_it_took_and_drains_in_order(conn: asyncpg.Connection, db_url: str,
                                                                tmp_path: Path) -> None:
    await add_nas(conn)
    daemon = await asyncio.to_thread(start_radiusd, db_url, tmp_path)
    # A burst of Starts from eight NAS sockets (125 Identifiers each); SIGTERM goes out the moment
    # the first answer arrives, so that the drain meets requests queued, in a batch and unread.
    clients = [AcctClient(daemon.acct_port) for _ in range(8)]
    burst: list[tuple[AcctClient, bytes]] = []
    requests: dict[tuple[int, int], tuple[str, bytes]] = {}
    for n in range(1000):
        client, session = clients[n % 8], new_session(n)
        packet = client.packet(session.attributes(AcctStatus.START, 0, 0))
        burst.append((client, packet))
        requests[client.sock.fileno(), packet[1]] = (session.session_id, packet)
    answered: set[str] = set()

    def receive() -> None:
        with selectors.DefaultSelector() as selector:
            for c in clients:
                selector.register(c.sock, selectors.EVENT_READ)
            while True:
                events = selector.select(timeout=0.5)
                if not events and daemon.proc.poll() is not None:
                    return  # it exited, and nothing more came
                for key, _ in events:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data = sock.recv(4096)
                    session_id, packet = requests[sock.fileno(), data[1]]
                    with contextlib.suppress(CodecError):
                        decode_response(data, packet[4:20], SECRET, request_code=Code.ACCOUNTING_REQUEST,
                                        require_ma=False)
                        if not answered:
                            daemon.proc.send_signal(signal.SIGTERM)
                        answered.add(session_id)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    try:
        for client, packet in burst:
            client.sock.sendto(packet, (NAS_IP, daemon.acct_port))
        code = await asyncio.to_thread(daemon.proc.wait, 20)
        await asyncio.to_thread(receiver.join, 5)
    finally:
        for client in clients:
            client.close()
        daemon.stop()

    assert code == 0, "\n".join(daemon.output)
    in_db = {r["acct_session_id"] for r in await conn.fetch("SELECT acct_session_id FROM radius_sessions")}
    assert answered and answered <= in_db  # an answer means a commit
    # What was taken before the intake stopped was committed AND answered before the sockets closed.
    assert in_db == answered, (len(in_db), len(answered))

    logs = daemon.logs()
    steps = [e["step"] for e in logs if e.get("event") == "drained"]
    assert not [e for e in logs if e.get("event") in ("drain step timed out", "drain step failed")]
    assert steps[:4] == ["stop-intake", "auth-in-flight", "lease-stock-release", "accounting"], steps
    order = ["stop-intake", "auth-in-flight", "accounting", "accounting-writer", "spool-replay", "sockets",
             "postauth", "database"]
    assert [s for s in steps if s in order] == order, steps
    assert [s for s in steps if s != "metrics"][-1] == "database", steps  # the runtime's /metrics goes after
    assert [e.get("clean") for e in logs if e.get("event") == "stopped"] == [True]


async def test_the_spool_survives_a_restart_and_is_replayed_at_start(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, daemons: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, daemons)
    await asyncio.to_thread(own_pg.stop)

    client = AcctClient(daemon.acct_port)
    sessions = [new_session(n) for n in range(3)]
    try:
        for s in sessions:
            for status, session_time, octets in [(AcctStatus.START, 0, 0), (AcctStatus.STOP, 120, 5000)]:
                packet = client.packet(s.attributes(status, session_time, octets))
                s.sent.append(Sent(status, session_time, octets, client.exchange(packet, 3.0), time.monotonic()))
    finally:
        client.close()
    assert all(m.acked for s in sessions for m in s.sent), "answered from the spool while PostgreSQL is down"
    spool_file = daemon.spool_dir / "accounting.spool"
    assert len(spool_file.read_bytes().splitlines()) == 6
    assert daemon.metric("lastmile_radiusd_spooled_total") == 6
    assert await asyncio.to_thread(daemon.stop) == 0, "\n".join(daemon.output)
    assert len(spool_file.read_bytes().splitlines()) == 6  # still there, fsync'ed

    await asyncio.to_thread(own_pg.start)
    again = await start(own_db, tmp_path, daemons)
    listening = next(e for e in again.logs() if e.get("event") == "radius listening")
    assert listening["spooled"] == 6
    await eventually(lambda: again.metric("lastmile_radiusd_replayed_total") == 6, timeout=10)
    assert again.metric("lastmile_radiusd_spool_records") == 0
    assert spool_file.read_bytes() == b""
    conn = await db.connect(own_db)
    try:
        assert await assert_recorded_exactly_once(conn, sessions) == 3
    finally:
        await conn.close()


class FullDisk:
    """The spool directory on a file system that a test can fill.

    As root (the test container) permission bits prove nothing, so the spool directory becomes a
    64 KiB tmpfs, which a filler file makes really full (write(2) fails with ENOSPC). Where mount
    is not allowed, the spool file itself becomes a symlink to /dev/full, whose writes fail with
    ENOSPC too; it is made only after radiusd started, as reading /dev/full at start would not end.
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        spool.mkdir(parents=True, exist_ok=True)
        mount = shutil.which("mount")
        self.tmpfs = bool(mount) and subprocess.run(
            [str(mount), "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(spool)],
            capture_output=True, check=False).returncode == 0

    def fill(self) -> None:
        if not self.tmpfs:
            (self.spool / "accounting.spool").symlink_to("/dev/full")
            return
        fd = os.open(self.spool / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.spool / ("filler" if self.tmpfs else "accounting.spool")).unlink()

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.spool)], capture_output=True, check=False)


async def test_no_answer_when_the_spool_cannot_be_written(own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path,
                                                          daemons: list[Radiusd]) -> None:
    disk = FullDisk(tmp_path / "spool")
    try:
        daemon = await start(own_db, tmp_path, daemons)
        await asyncio.to_thread(own_pg.stop)
        disk.fill()
        client = AcctClient(daemon.acct_port)
        session = new_session(1)
        packet = client.packet(session.attributes(AcctStatus.START, 0, 0))
        try:
            # RFC 2866 4.1: neither the database nor the spool took it, so no Accounting-Response.
            assert not await asyncio.to_thread(client.exchange, packet, 1.5)
            assert daemon.metric("lastmile_radiusd_acct_unrecorded_total") >= 1
            assert daemon.metric("lastmile_radiusd_spooled_total") == 0
            spool_file = daemon.spool_dir / "accounting.spool"
            assert not spool_file.exists() or os.path.realpath(spool_file) == "/dev/full" or \
                spool_file.stat().st_size == 0  # no torn line left behind
            # Room again: the NAS's retransmission (the same octets) is taken and answered.
            disk.free()
            assert await asyncio.to_thread(client.exchange, packet, 3.0)
            session.sent.append(Sent(AcctStatus.START, 0, 0, True, time.monotonic()))
        finally:
            client.close()
        assert daemon.metric("lastmile_radiusd_spooled_total") == 1
        await asyncio.to_thread(own_pg.start)
        await eventually(lambda: daemon.metric("lastmile_radiusd_replayed_total") == 1, timeout=10)
        conn = await db.connect(own_db)
        try:
            assert await assert_recorded_exactly_once(conn, [session]) == 1
        finally:
            await conn.close()
        await asyncio.to_thread(daemon.stop)
    finally:
        disk.close()
