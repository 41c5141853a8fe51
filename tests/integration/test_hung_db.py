"""radiusd and flowcollector while PostgreSQL hangs: every backend stopped (SIGSTOP), connections open, nothing
answering, as with a stuck disk or a swap storm. A crash is easy by comparison: connections
break at once. A hang must cost the NAS no retransmission either: past ``db_deadline`` an
accounting batch is spooled and acknowledged, a login is decided from memory, and a drain
still ends within ``drain_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pyrad.packet import AccessAccept, AccessReject

from daemons import db
from daemons.pgembed import EmbeddedPostgres
from radiusd.codec import AcctStatus
from tests.integration import test_flowcollector as flow
from tests.integration.acct_load import AcctClient, Sent, assert_recorded_exactly_once, nas_load, new_session
from tests.integration.conftest import freeze, thaw
from tests.integration.radius_env import (
    Radiusd,
    access_request,
    accounting_request,
    add_service,
    attrs,
    client,
    eventually,
    send,
    start,
)
from tests.unit.flow import flowbuild as fb

DEADLINE = "0.4"


@pytest.fixture
async def thawed(own_pg: EmbeddedPostgres, own_db: str) -> AsyncIterator[EmbeddedPostgres]:
    """The module's server, thawed again whatever the test did, before its database is dropped."""
    yield own_pg
    await asyncio.to_thread(thaw, own_pg)


@pytest.mark.slow
async def test_accounting_is_answered_through_a_hang_and_recorded_once(
        thawed: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, radiusds, db_deadline=DEADLINE)
    async with nas_load(daemon.acct_port) as sessions:
        await asyncio.sleep(1.5)
        hung_at = time.monotonic()
        await asyncio.to_thread(freeze, thawed)
        await asyncio.sleep(4.0)
        await asyncio.to_thread(thaw, thawed)
        thawed_at = time.monotonic()
        await asyncio.sleep(1.5)
    sent = [m for s in sessions for m in s.sent]
    during = [m for m in sent if hung_at + 1.0 <= m.at <= thawed_at]
    # Each client waits 1 s for an answer, as a NAS does before it retransmits: through the hang,
    # answers come from the spool within the deadline, so not one request goes unanswered.
    assert len(during) > 30 and all(m.acked for m in during), [m for m in during if not m.acked]
    assert all(m.acked for m in sent if m.at > thawed_at + 1.0)
    assert daemon.metric("lastmile_radiusd_db_deadline_total", step="commit") >= 1
    assert daemon.metric("lastmile_radiusd_slow_commits_total") == 0  # the probe found it hung, not slow
    spooled = daemon.metric("lastmile_radiusd_spooled_total")
    assert spooled >= len(during)
    # After the hang: the late commit and the replay of the same records meet in the upserts.
    await eventually(lambda: daemon.metric("lastmile_radiusd_spool_records") == 0, timeout=20)
    assert daemon.metric("lastmile_radiusd_replayed_total") == spooled
    await eventually(lambda: any(e.get("event", "").startswith("a late commit") for e in daemon.logs()), timeout=10)
    conn = await db.connect(own_db)
    try:
        checked = await assert_recorded_exactly_once(conn, sessions)
    finally:
        await conn.close()
    assert checked >= 50
    assert daemon.proc.poll() is None, "\n".join(daemon.output)


async def test_logins_that_need_the_database_are_decided_from_memory_during_a_hang(
        thawed: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    conn = await db.connect(own_db)
    try:
        await add_service(conn, "eve", "pw-eve")
        pool_id = await conn.fetchval("INSERT INTO ip_pools (name, network) VALUES ('dyn', '100.96.0.0/28') "
                                      "RETURNING id")
        await add_service(conn, "pat", "pw-pat", pool_id=pool_id)
        await add_service(conn, "pia", "pw-pia", pool_id=pool_id)
        # pat had an address before: a login waits for the database, which may give it back.
        await conn.execute("UPDATE ip_leases SET service_id = (SELECT id FROM services WHERE login = 'pat') "
                           "WHERE address = '100.96.0.9'")
        daemon = await start(own_db, tmp_path, radiusds, db_deadline=DEADLINE)
        c = client(daemon, timeout=1.5, retries=1)
        await send(c, accounting_request(c, "eve", "Start", "eve-1"))  # eve is online: a second login is too many
        assert (await send(c, access_request(c, "pia", "pw-pia"))).code == AccessAccept  # the pool's stock fills
        await eventually(lambda: conn.fetchval("SELECT count(*) > 4 FROM ip_leases WHERE state = 'stock'"))
    finally:
        await conn.close()
    await asyncio.to_thread(freeze, thawed)
    t = time.monotonic()
    reply = await send(c, access_request(c, "eve", "pw-eve"))
    assert reply.code == AccessReject and attrs(reply)["Reply-Message"] == ["Already logged in"]
    reply = await send(c, access_request(c, "pat", "pw-pat"))
    assert reply.code == AccessAccept
    assert attrs(reply)["Framed-IP-Address"][0].startswith("100.96.0.")  # from the stock, not waited for
    assert time.monotonic() - t < 2 * 1.5  # each answered on its first try
    assert daemon.metric("lastmile_radiusd_db_deadline_total", step="simultaneous_use") == 1
    assert daemon.metric("lastmile_radiusd_db_deadline_total", step="pool_lease") == 1
    assert any(e.get("event") == "login decided without the database" for e in daemon.logs())


async def test_a_drain_during_a_hang_ends_within_drain_timeout(
        thawed: EmbeddedPostgres, own_db: str, tmp_path: Path, radiusds: list[Radiusd]) -> None:
    daemon = await start(own_db, tmp_path, radiusds, db_deadline=DEADLINE, drain_timeout="3")
    acct = AcctClient(daemon.acct_port)
    session = new_session(1, length=2)
    try:
        assert acct.exchange(acct.packet(session.attributes(AcctStatus.START, 0, 0)), 2.0)
        session.sent.append(Sent(AcctStatus.START, 0, 0, True, time.monotonic()))
        await asyncio.to_thread(freeze, thawed)
        packet = acct.packet(session.attributes(AcctStatus.STOP, 60, 1000))
        assert await asyncio.to_thread(acct.exchange, packet, 2.0)  # spooled after the deadline
        session.sent.append(Sent(AcctStatus.STOP, 60, 1000, True, time.monotonic()))
    finally:
        acct.close()
    t = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(daemon.proc.wait, 15)
    except Exception:
        daemon.stop(signal.SIGKILL)
        raise AssertionError("\n".join(daemon.output[-40:])) from None
    took = time.monotonic() - t
    assert took < 3 + 1.5, took  # drain_timeout, and the process's exit
    daemon.stop()
    assert any(e.get("event") == "stopped" for e in daemon.logs())
    # What was acknowledged is in the spool, and goes to the database after the hang.
    await asyncio.to_thread(thaw, thawed)
    again = await start(own_db, tmp_path, radiusds)
    await eventually(lambda: again.metric("lastmile_radiusd_spool_records") == 0, timeout=10)
    conn: asyncpg.Connection = await db.connect(own_db)
    try:
        assert await assert_recorded_exactly_once(conn, [session]) == 1
    finally:
        await conn.close()


async def test_flowcollector_stops_within_drain_timeout_during_a_hang_and_keeps_its_state(
        thawed: EmbeddedPostgres, own_db: str, tmp_path: Path) -> None:
    conn = await db.connect(own_db)
    try:
        await conn.execute("INSERT INTO flow_exporters (name, address) VALUES ('bras', '127.0.0.1')")
        await add_service(conn, "a", "x", ipv4="100.64.0.1")
    finally:
        await conn.close()
    daemon = await asyncio.to_thread(lambda: flow.start(own_db, tmp_path, drain_timeout="3", flush_interval="0.3"))
    try:
        uptime, secs = 50_000, int(time.time())
        data = fb.record(flow.V9_FIELDS, {8: "1.1.1.1", 12: "100.64.0.1", 1: 4242, 2: 4, 22: uptime - 2000,
                                          21: uptime - 1000})
        await asyncio.to_thread(freeze, thawed)
        flow.send(daemon.port, [fb.v9([fb.template_set(9, [(256, flow.V9_FIELDS)]), fb.data_set(256, [data])],
                                      uptime=uptime, secs=secs, seq=0)])
        await eventually(lambda: daemon.metric("lastmile_flow_records_total") == 1)
        t = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(daemon.proc.wait, 15)
        took = time.monotonic() - t
    finally:
        daemon.stop(signal.SIGKILL)
    assert took < 3 + 1.5, took
    # The templates and sequence state were saved although the last flush could not be written.
    (domain,) = json.loads((tmp_path / "state" / "templates.json").read_text())["domains"]
    assert [t["id"] for t in domain["templates"]] == [256] and domain["seq"] is not None
    assert any(e.get("event") == "traffic not written at shutdown: the database did not answer"
               for e in daemon.logs())
