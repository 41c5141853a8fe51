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
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from pyrad.packet import AccessAccept, AccessReject

from daemons import db
from daemons.pgembed import EmbeddedPostgres
from radiusd.codec import AcctStatus, Code, CodecError, decode_response
from tests.integration.acct_load import (
    NAS_IP,
    AcctClient,
    Sent,
    assert_recorded_exactly_once,
    nas_load,
    new_session,
)
from tests.integration.conftest import crash
from tests.integration.radius_env import (
    SECRET,
    Radiusd,
    access_request,
    add_nas,
    add_service,
    attrs,
    client,
    eventually,
    send,
    start,
    start_radiusd,
)

# -- the tests ----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_postgresql_crash_under_load_loses_no_acknowledged_record(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, radiusds)
    async with nas_load(daemon.acct_port) as sessions:
        await asyncio.sleep(2.0)
        down_at = time.monotonic()
        await asyncio.to_thread(crash, own_pg)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(own_pg.start)  # crash recovery first
        up_at = time.monotonic()
        await asyncio.sleep(2.0)  # load goes on while the spool drains behind it

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
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, radiusds)
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
    again = await start(own_db, tmp_path, radiusds)
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


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return 'lastmile_ready{daemon="radiusd"} 1.0' in response.read().decode()
    except OSError:
        return False


@pytest.mark.slow
async def test_a_spool_written_by_another_number_of_workers_is_replayed(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    two = await start(own_db, tmp_path, radiusds, workers="2")
    await eventually(lambda: ready(two.metrics_port + 1) and ready(two.metrics_port + 2), timeout=20)
    await asyncio.to_thread(own_pg.stop)
    clients = [AcctClient(two.acct_port) for _ in range(20)]  # sources the kernel spreads over both workers
    sessions = [new_session(n, length=1) for n in range(200)]
    try:
        for n, s in enumerate(sessions):
            packet = clients[n % 20].packet(s.attributes(AcctStatus.START, 0, 0))
            acked = await asyncio.to_thread(clients[n % 20].exchange, packet, 3.0)
            s.sent.append(Sent(AcctStatus.START, 0, 0, acked, time.monotonic()))
    finally:
        for c in clients:
            c.close()
    assert all(m.acked for s in sessions for m in s.sent)
    spools = [two.spool_dir / f"worker-{i}" / "accounting.spool" for i in (1, 2)]
    lines = [len(p.read_bytes().splitlines()) for p in spools]
    assert sum(lines) == 200 and all(lines), lines  # both workers spooled some
    assert await asyncio.to_thread(two.stop) == 0, "\n".join(two.output)

    await asyncio.to_thread(own_pg.start)
    one = await start(own_db, tmp_path, radiusds)  # one process now: worker-1 and worker-2 are nobody's
    adopted = [e for e in one.logs() if e.get("event") == "adopted accounting spooled by another number of workers"]
    assert adopted and adopted[0]["records"] == 200
    await eventually(lambda: one.metric("lastmile_radiusd_replayed_total") == 200, timeout=15)
    assert all(not p.exists() for p in spools)
    conn = await db.connect(own_db)
    try:
        assert await assert_recorded_exactly_once(conn, sessions) == 200
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
                                                          radiusds: list[Radiusd]) -> None:
    disk = FullDisk(tmp_path / "spool")
    try:
        daemon = await start(own_db, tmp_path, radiusds)
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


@pytest.mark.slow
async def test_a_start_while_postgresql_is_down_serves_from_the_snapshot(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    conn = await db.connect(own_db)
    try:
        await add_service(conn, "ann", "pw-ann", ipv4="100.64.0.5")
        await add_service(conn, "bob", "pw-bob", mac="02:00:00:00:0b:0b")
    finally:
        await conn.close()
    first = await start(own_db, tmp_path, radiusds)
    snapshot_file = first.spool_dir / "cache.snapshot"
    await eventually(snapshot_file.exists)
    assert snapshot_file.stat().st_mode & 0o777 == 0o600  # it holds the NAS secrets and passwords
    assert await asyncio.to_thread(first.stop) == 0
    await asyncio.to_thread(own_pg.stop)

    daemon = await start(own_db, tmp_path, radiusds)  # ready although PostgreSQL is down
    assert any(e.get("event") == "database unreachable: serving from the cache snapshot" for e in daemon.logs())
    assert daemon.metric("lastmile_radiusd_cache_from_snapshot") == 1
    c = client(daemon)
    accept = await send(c, access_request(c, "ann", "pw-ann"))
    assert accept.code == AccessAccept and attrs(accept)["Framed-IP-Address"] == ["100.64.0.5"]
    assert (await send(c, access_request(c, "ann", "wrong"))).code == AccessReject
    assert (await send(c, access_request(c, "bob", "pw-bob", Calling_Station_Id="02-00-00-00-0B-0B"))).code \
        == AccessAccept  # the MAC binding came through the snapshot too
    acct = AcctClient(daemon.acct_port)
    session = new_session(7, length=1)
    try:
        acked = await asyncio.to_thread(acct.exchange, acct.packet(session.attributes(AcctStatus.START, 0, 0)), 3.0)
    finally:
        acct.close()
    session.sent.append(Sent(AcctStatus.START, 0, 0, acked, time.monotonic()))
    assert acked and daemon.metric("lastmile_radiusd_spooled_total") == 1

    await asyncio.to_thread(own_pg.start)
    try:
        await eventually(lambda: daemon.metric("lastmile_radiusd_cache_from_snapshot") == 0, timeout=20)
    except Exception:
        raise AssertionError("\n".join(daemon.output)) from None
    await eventually(lambda: daemon.metric("lastmile_radiusd_replayed_total") == 1, timeout=10)
    conn = await db.connect(own_db)
    try:
        assert await assert_recorded_exactly_once(conn, [session]) == 1
        await conn.execute("UPDATE services SET password = 'new-ann' WHERE login = 'ann'")  # NOTIFY works again
        await eventually(lambda: send(c, access_request(c, "ann", "new-ann")), timeout=5)
    finally:
        await conn.close()
    assert daemon.proc.poll() is None


async def test_a_start_without_database_or_snapshot_fails_in_one_line(
        own_pg: EmbeddedPostgres, own_db: str, tmp_path: Path) -> None:
    await asyncio.to_thread(own_pg.stop)
    with pytest.raises(AssertionError) as failed:
        await asyncio.to_thread(start_radiusd, own_db, tmp_path)
    output = str(failed.value)
    assert "the database is unreachable" in output and "no cache snapshot at" in output, output
    assert "Traceback" not in output
