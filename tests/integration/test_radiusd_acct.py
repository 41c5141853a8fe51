"""radiusd accounting over UDP: upserts that survive retransmits, reordering and NAS reboots; events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from pyrad.packet import AccessAccept

from tests.integration.conftest import Broker
from tests.integration.radius_env import (
    Radiusd,
    access_request,
    accounting_request,
    add_nas,
    add_service,
    attrs,
    client,
    eventually,
    send,
    start_radiusd,
    unique_id,
)


@pytest.fixture
async def radiusd(db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Radiusd]:
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann", simultaneous_use=0)
    daemon = start_radiusd(db_url, tmp_path)
    yield daemon
    assert daemon.stop() == 0, "\n".join(daemon.output)


async def session(conn: asyncpg.Connection, session_id: str, user: str = "ann", port: str = "") -> asyncpg.Record:
    rows = await conn.fetch("SELECT * FROM radius_sessions WHERE acct_unique_id = $1",
                            unique_id(user, session_id, nas_port_id=port))
    assert len(rows) == 1, rows
    return rows[0]


async def test_start_interim_stop_with_gigawords(radiusd: Radiusd, conn: asyncpg.Connection) -> None:
    c = client(radiusd)
    ids = {"Framed_IP_Address": "100.64.0.77", "Calling_Station_Id": "02:00:00:00:00:77", "NAS_Port_Id": "ether1"}
    await send(c, accounting_request(c, "ann", "Start", "s1", **ids))
    row = await session(conn, "s1", port="ether1")
    assert row["stopped_at"] is None and str(row["framed_ip"]) == "100.64.0.77"
    assert row["service_id"] is not None and row["nas_port_id"] == "ether1"
    await send(c, accounting_request(c, "ann", "Interim-Update", "s1", Acct_Session_Time=300,
                                     Acct_Input_Octets=1000, Acct_Input_Gigawords=2, Acct_Output_Octets=5000,
                                     Acct_Input_Packets=10, Acct_Output_Packets=20, **ids))
    row = await session(conn, "s1", port="ether1")
    assert row["input_octets"] == 2 * 2**32 + 1000 and row["output_octets"] == 5000
    assert row["session_time_s"] == 300
    await send(c, accounting_request(c, "ann", "Stop", "s1", Acct_Session_Time=600, Acct_Input_Octets=2000,
                                     Acct_Input_Gigawords=2, Acct_Output_Octets=9000,
                                     Acct_Terminate_Cause="User-Request", **ids))
    row = await session(conn, "s1", port="ether1")
    assert row["stopped_at"] is not None and row["terminate_cause"] == "User-Request"
    assert row["input_octets"] == 2 * 2**32 + 2000 and row["session_time_s"] == 600


async def test_reordered_and_repeated_records_leave_one_correct_row(radiusd: Radiusd,
                                                                    conn: asyncpg.Connection) -> None:
    c = client(radiusd)
    # A Stop arrives first (its Start was lost), then a late Interim, then the Start, then the Stop again.
    stop = accounting_request(c, "ann", "Stop", "s2", Acct_Session_Time=900, Acct_Output_Octets=9000)
    await send(c, stop)
    await send(c, accounting_request(c, "ann", "Interim-Update", "s2", Acct_Session_Time=300,
                                     Acct_Output_Octets=3000))
    await send(c, accounting_request(c, "ann", "Start", "s2"))
    await send(c, accounting_request(c, "ann", "Stop", "s2", Acct_Session_Time=900, Acct_Output_Octets=9000,
                                     Acct_Delay_Time=5))
    row = await session(conn, "s2")
    assert row["output_octets"] == 9000, "counters never go backwards"
    assert row["session_time_s"] == 900 and row["stopped_at"] is not None
    assert await conn.fetchval("SELECT count(*) FROM radius_session_index") == 1


async def test_same_packet_twice_is_acknowledged_twice_and_written_once(radiusd: Radiusd,
                                                                        conn: asyncpg.Connection) -> None:
    import socket

    from radiusd.codec import Code, encode_request
    from tests.integration.radius_env import SECRET

    packet = encode_request(Code.ACCOUNTING_REQUEST, 77, [
        ("User-Name", "ann"), ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "s3"),
        ("NAS-IP-Address", "127.0.0.1")], SECRET)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.bind(("127.0.0.1", 0))
        s.sendto(packet, ("127.0.0.1", radiusd.acct_port))
        first = s.recv(100)
        s.sendto(packet, ("127.0.0.1", radiusd.acct_port))
        second = s.recv(100)
    assert first == second and first[0] == Code.ACCOUNTING_RESPONSE
    assert radiusd.metric("lastmile_radiusd_duplicates_total") == 1
    await session(conn, "s3")


async def test_accounting_on_closes_the_nas_sessions(radiusd: Radiusd, conn: asyncpg.Connection) -> None:
    c = client(radiusd)
    for sid in ("a", "b", "c"):
        await send(c, accounting_request(c, "ann", "Start", sid))
    req = c.CreateAcctPacket(Acct_Status_Type="Accounting-On", NAS_IP_Address="127.0.0.1")
    await send(c, req)
    open_sessions = await conn.fetchval("SELECT count(*) FROM radius_sessions WHERE stopped_at IS NULL")
    assert open_sessions == 0
    causes = {r["terminate_cause"] for r in await conn.fetch("SELECT terminate_cause FROM radius_sessions")}
    assert causes == {"NAS-Reboot"}


async def test_accounting_without_session_id_gets_no_answer(radiusd: Radiusd) -> None:
    c = client(radiusd)
    c.timeout, c.retries = 0.3, 1
    req = c.CreateAcctPacket(User_Name="ann", Acct_Status_Type="Start", NAS_IP_Address="127.0.0.1")
    from pyrad.client import Timeout

    with pytest.raises(Timeout):
        await send(c, req)
    assert radiusd.metric("lastmile_radiusd_dropped_total", reason="unrecordable_accounting") == 1


async def test_stale_sessions_are_closed(conn: asyncpg.Connection) -> None:
    from radiusd import store

    await conn.execute(
        "INSERT INTO radius_sessions (acct_unique_id, started_at, username, acct_session_id, updated_at) "
        "VALUES ('old', now() - interval '2 hours', 'ann', 'x', now() - interval '1 hour'), "
        "('fresh', now() - interval '2 hours', 'ann', 'y', now())")
    closed = await store.close_stale(conn, 720)
    assert [c.unique_id for c in closed] == ["old"]
    row = await conn.fetchrow("SELECT stopped_at, updated_at, terminate_cause FROM radius_sessions "
                              "WHERE acct_unique_id = 'old'")
    assert row is not None
    assert row["stopped_at"] == row["updated_at"] and row["terminate_cause"] == "Stale"


async def test_cache_gauges_follow_every_change(radiusd: Radiusd, conn: asyncpg.Connection) -> None:
    """lastmile_radiusd_cache_entries follows sessions opened and closed here (the writer) and by
    another instance (lastmile_sessions), services and NAS added, without waiting for a full reload."""
    def gauge(cache: str) -> float:
        return radiusd.metric("lastmile_radiusd_cache_entries", cache=cache)

    async def other_instance(uid: str, stop: float | None) -> None:
        service = await conn.fetchval("SELECT id FROM services WHERE login = 'ann'")
        payload = {"by": "radiusd-elsewhere", "sessions": [{"uid": uid, "service": service, "ip": None,
                                                            "start": 1.0e9, "stop": stop}]}
        await conn.execute("SELECT pg_notify('lastmile_sessions', $1)", json.dumps(payload))

    assert (gauge("services"), gauge("nas"), gauge("online_sessions")) == (1, 1, 0)
    c = client(radiusd)
    await send(c, accounting_request(c, "ann", "Start", "g1"))
    await eventually(lambda: gauge("online_sessions") == 1)
    await other_instance("from-elsewhere", None)
    await eventually(lambda: gauge("online_sessions") == 2)
    await other_instance("from-elsewhere", 1.0e9 + 60)
    await eventually(lambda: gauge("online_sessions") == 1)
    await send(c, accounting_request(c, "ann", "Stop", "g1", Acct_Session_Time=60))
    await eventually(lambda: gauge("online_sessions") == 0)
    await add_service(conn, "bob", "secret-bob")
    await eventually(lambda: gauge("services") == 2)
    await add_nas(conn, address="127.0.0.2/32", name="nas-2")
    await eventually(lambda: gauge("nas") == 2)


async def test_a_stale_session_closes_within_a_quarter_of_the_threshold_after_it(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Threshold 2 x 2 + 1 = 5 s: the sweep runs every 5 / 4 s, so the session closes between 5 and
    6.25 s after its last record (plus the time a sweep's statement takes on a busy machine)."""
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann", simultaneous_use=0)
    daemon = start_radiusd(db_url, tmp_path, interim_interval="2", stale_grace="1")
    try:
        c = client(daemon)
        await send(c, accounting_request(c, "ann", "Start", "gone"))
        last = (await session(conn, "gone"))["updated_at"]

        async def closed_after() -> float | None:
            row = await conn.fetchrow(
                "SELECT stopped_at IS NOT NULL AS closed, extract(epoch FROM now() - $1::timestamptz) AS age "
                "FROM radius_sessions WHERE acct_unique_id = $2", last, unique_id("ann", "gone"))
            assert row is not None
            return float(row["age"]) if row["closed"] else None

        age = await eventually(closed_after, timeout=8.0)
        assert 5.0 <= age <= 5.0 + 1.25 + 1.5, age  # 1.5 s: a sweep statement and a poll on a busy machine
        row = await session(conn, "gone")
        assert row["terminate_cause"] == "Stale" and row["stopped_at"] == last
        assert daemon.metric("lastmile_radiusd_stale_sessions_closed_total") == 1
    finally:
        assert daemon.stop() == 0


async def test_session_events_on_mqtt(mqtt_broker: Broker, db_url: str, conn: asyncpg.Connection,
                                      tmp_path: Path) -> None:
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann", simultaneous_use=0)
    got: list[tuple[str, dict[str, object]]] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="t") as mqtt:
            await mqtt.subscribe("lastmile/session/#")
            ready.set()
            async for m in mqtt.messages:
                got.append((str(m.topic), json.loads(bytes(m.payload))))

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    daemon = start_radiusd(db_url, tmp_path, extra_env={"LASTMILE_MQTT__URL": mqtt_broker.url})
    try:
        c = client(daemon)
        await send(c, accounting_request(c, "ann", "Start", "ev", Framed_IP_Address="100.64.0.5"))
        await send(c, accounting_request(c, "ann", "Interim-Update", "ev", Acct_Session_Time=60))
        await send(c, accounting_request(c, "ann", "Stop", "ev", Acct_Session_Time=120))
        await eventually(lambda: len(got) >= 2)
        assert [t for t, _ in got] == ["lastmile/session/start", "lastmile/session/stop"]
        assert got[0][1]["login"] == "ann" and got[0][1]["framed_ip"] == "100.64.0.5"
    finally:
        assert daemon.stop() == 0
        task.cancel()


async def test_a_nas_restart_frees_its_logins_at_once_and_is_one_event(
        mqtt_broker: Broker, db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """A BRAS reboots: its Accounting-On closes every session it had, which takes seconds for
    100,000 of them, and its subscribers log in again meanwhile. Here a row lock held by another
    transaction stands for the long commit: the database answers but the commit waits. The
    commit is waited for, not spooled (the database is not hung); the login that comes during
    it is not rejected for Simultaneous-Use; MQTT gets one nas/restart, no session/stop."""
    await add_nas(conn)
    await add_service(conn, "ann", "secret-ann", simultaneous_use=1)
    got: list[tuple[str, dict[str, object]]] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, identifier="t") as mqtt:
            await mqtt.subscribe("lastmile/#")
            ready.set()
            async for m in mqtt.messages:
                got.append((str(m.topic), json.loads(bytes(m.payload))))

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    daemon = start_radiusd(db_url, tmp_path, db_deadline="0.4", extra_env={"LASTMILE_MQTT__URL": mqtt_broker.url})
    locker = await asyncpg.connect(db_url)
    try:
        c = client(daemon)
        await send(c, accounting_request(c, "ann", "Start", "before-reboot", Framed_IP_Address="100.64.0.5"))
        await eventually(lambda: len(got) == 1)
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT FROM radius_sessions WHERE acct_unique_id = $1 FOR UPDATE",
                             unique_id("ann", "before-reboot"))
        on = client(daemon, timeout=1.0, retries=10)
        answered = asyncio.create_task(send(on, on.CreateAcctPacket(Acct_Status_Type="Accounting-On",
                                                                    NAS_IP_Address="127.0.0.1")))
        await eventually(lambda: daemon.metric("lastmile_radiusd_slow_commits_total") == 1)
        reply = await send(c, access_request(c, "ann", "secret-ann"))
        assert reply.code == AccessAccept, attrs(reply)
        assert not answered.done()
        await lock.rollback()
        await asyncio.wait_for(answered, 10)
        row = await session(conn, "before-reboot")
        assert row["terminate_cause"] == "NAS-Reboot"
        assert daemon.metric("lastmile_radiusd_spooled_total") == 0
        assert daemon.metric("lastmile_radiusd_db_deadline_total", step="commit") == 0
        await eventually(lambda: len(got) == 2)
        await asyncio.sleep(0.3)  # nothing else follows
        assert [t for t, _ in got] == ["lastmile/session/start", "lastmile/nas/restart"]
        restart = got[1][1]
        assert (restart["nas"], restart["status"], restart["sessions_closed"]) == ("nas-1", "on", 1)
        assert restart["nas_id"] == got[0][1]["nas_id"] == row["nas_id"]
    finally:
        await locker.close()
        assert daemon.stop() == 0
        task.cancel()
