"""Automatic tickets (admin/tickets/automatic.py) against a real PostgreSQL with fixed clocks:
each kind opened once (its rule_key), none while its setting is off, and a router out of sync
for less than router_drift_minutes opens none."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest
import structlog

from admin.auth.store import Connection
from admin.tariffs import queries as tariff_queries
from admin.tickets import automatic
from admin.worker import jobs
from daemons import db
from daemons.config import DatabaseSettings, Settings
from tests.db.notifications_data import at, customer, invoice, partner

NOW = at("2026-12-01 09:00")


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db_url)
    await db.init_connection(c)
    try:
        yield c
    finally:
        await c.close()


async def tickets(conn: Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT t.*, (SELECT body FROM ticket_messages m WHERE m.ticket_id = t.id ORDER BY m.id LIMIT 1) AS body "
        "FROM tickets t ORDER BY t.id"))


async def setting(conn: Connection, **values: object) -> None:
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=1))
    await conn.execute(f"UPDATE ticket_settings SET {sets}", *values.values())


async def service(conn: Connection, cid: int, tariff_id: int, login: str, status: str = "active") -> None:
    await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, status) "
                       "VALUES ($1, $2, $3, 'pw', $4)", cid, tariff_id, login, status)


async def run(conn: Connection, now: dt.datetime = NOW) -> automatic.Summary:
    return await automatic.run(conn, now=now)


# -- 1. tariffs ----------------------------------------------------------------------------------

async def test_a_tariff_created_and_changed_opens_a_ticket_each_once_in_the_group(conn: asyncpg.Connection) -> None:
    group = await conn.fetchval("INSERT INTO ticket_groups (name) VALUES ('Billing') RETURNING id")
    await setting(conn, group_id=group)
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    row = await tariff_queries.create(conn, {"name": "Fibre 100", "download_kbps": 100000, "upload_kbps": 20000,
                                             "price": "29.99"})
    created = await automatic.tariff_changed(conn, None, row, now=NOW)
    assert created is not None
    assert await automatic.tariff_changed(conn, None, row, now=NOW) is None  # the same version: once
    await service(conn, cid, row["id"], "a1")
    await service(conn, cid, row["id"], "a2")
    await service(conn, cid, row["id"], "a3", status="archived")
    after = await tariff_queries.update(conn, row["id"], {"price": "34.99", "download_kbps": 150000,
                                                          "priority": 3})
    assert await automatic.tariff_changed(conn, row, after, now=NOW) is not None
    assert await automatic.tariff_changed(conn, row, after, now=NOW) is None
    [first, second] = await tickets(conn)
    assert (first["source"], first["customer_id"], first["partner_id"], first["group_id"]) == ("rule", None, None,
                                                                                              group)
    assert first["subject"] == "Tariff plan Fibre 100 created" and "download: 100 Mbit/s" in first["body"]
    assert "0 active services are on this plan." in first["body"]
    assert first["rule_key"] == f"tariff:{row['id']}:{row['updated_at'].isoformat()}"
    assert second["subject"] == "Tariff plan Fibre 100 changed"
    assert "price: 29.99 → 34.99" in second["body"] and "download: 100 Mbit/s → 150 Mbit/s" in second["body"]
    assert "also changed: priority" in second["body"] and "upload" not in second["body"]
    assert "2 active services are on this plan." in second["body"]


async def test_no_tariff_ticket_while_tariff_tickets_are_off(conn: asyncpg.Connection) -> None:
    await setting(conn, tariff_tickets=False)
    row = await tariff_queries.create(conn, {"name": "Off", "download_kbps": 1000, "upload_kbps": 1000})
    assert await automatic.tariff_changed(conn, None, row, now=NOW) is None
    assert await tickets(conn) == []


# -- 2. CPE faults -------------------------------------------------------------------------------

async def device(conn: Connection, serial: str, cid: int | None) -> int:
    value: int = await conn.fetchval(
        "INSERT INTO acs_devices (cwmp_id, oui, product_class, serial, customer_id) "
        "VALUES ($1, 'A1B2C3', 'HG8245', $2, $3) RETURNING id", f"A1B2C3-HG8245-{serial}", serial, cid)
    return value


async def fault(conn: Connection, device_id: int, when: dt.datetime, code: int | None = 9002,
                message: str = "Internal error") -> None:
    await conn.execute("INSERT INTO acs_faults (device_id, at, source, rpc, code, message) "
                       "VALUES ($1, $2, 'task', 'SetParameterValues', $3, $4)", device_id, when, code, message)


async def test_cpe_faults_open_a_ticket_per_device_and_day_each_fault_read_once(conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    dev = await device(conn, "S1", cid)
    loose = await device(conn, "S2", None)
    await fault(conn, dev, NOW - dt.timedelta(minutes=20))
    await fault(conn, dev, NOW - dt.timedelta(minutes=10), 9005, "Invalid parameter name")
    await fault(conn, loose, NOW - dt.timedelta(minutes=10), None, "")
    await fault(conn, dev, NOW - dt.timedelta(seconds=30))  # within the lag: read by the next run
    assert (await run(conn)).cpe_faults == 2
    [mine, other] = await tickets(conn)
    assert mine["subject"] == "Router A1B2C3-HG8245-S1: fault 9002 Internal error"
    assert (mine["customer_id"], mine["partner_id"], mine["source"], mine["type"]) == (cid, pid, "rule", "incident")
    assert mine["rule_key"] == f"cpe_fault:{dev}:2026-12-01"
    assert other["subject"] == "Router A1B2C3-HG8245-S2: fault task" and other["customer_id"] is None
    assert (await run(conn)).cpe_faults == 0  # read once; the same day's later faults: the same ticket
    assert (await run(conn, NOW + dt.timedelta(minutes=5))).cpe_faults == 0
    await fault(conn, dev, NOW + dt.timedelta(days=1))
    assert (await run(conn, NOW + dt.timedelta(days=1, minutes=2))).cpe_faults == 1
    assert (await tickets(conn))[-1]["rule_key"] == f"cpe_fault:{dev}:2026-12-02"


async def test_no_cpe_fault_ticket_while_they_are_off_and_the_cursor_moves_on(conn: asyncpg.Connection) -> None:
    await setting(conn, cpe_fault_tickets=False)
    dev = await device(conn, "S1", None)
    await fault(conn, dev, NOW - dt.timedelta(minutes=10))
    assert (await run(conn)).cpe_faults == 0
    await setting(conn, cpe_fault_tickets=True)
    assert (await run(conn, NOW + dt.timedelta(minutes=1))).cpe_faults == 0  # not the old one
    assert await tickets(conn) == []


# -- 3. failed payments --------------------------------------------------------------------------

async def failed_collection(conn: Connection, cid: int, pid: int) -> int:
    document, _ = await invoice(conn, cid, pid, dt.date(2026, 11, 1), dt.date(2026, 11, 15))
    mandate = await conn.fetchval("INSERT INTO sepa_mandates (customer_id, reference, iban, holder, signed_on) "
                                  "VALUES ($1, 'M-1', 'DE89370400440532013000', 'Holder', '2026-03-01') "
                                  "RETURNING id", cid)
    batch = await conn.fetchval("INSERT INTO dd_batches (message_id, collection_date, currency, count, total, xml) "
                                "VALUES ('B-1', '2026-11-25', 'EUR', 1, 30, '<x/>') RETURNING id")
    value: int = await conn.fetchval(
        "INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, sequence, "
        "end_to_end_id, status, reason) VALUES ($1, $2, $3, $4, 30, 'FRST', 'E-1', 'failed', 'AC04 account closed') "
        "RETURNING id", batch, mandate, cid, document)
    return value


async def failed_autopay(conn: Connection, cid: int, when: dt.datetime) -> int:
    value: int = await conn.fetchval(
        "INSERT INTO payment_intents (customer_id, gateway, purpose, amount, currency, status, idempotency_key, "
        "error, created_at, updated_at) VALUES ($1, 'stripe', 'autopay', 30, 'EUR', 'failed', $2, "
        "'card_declined', $3, $3) RETURNING id", cid, f"autopay:{when.isoformat()}", when)
    return value


async def test_a_failed_collection_and_a_failed_autopay_charge_open_a_ticket_each_once(
        conn: asyncpg.Connection) -> None:
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    collection = await failed_collection(conn, cid, pid)
    intent = await failed_autopay(conn, cid, NOW - dt.timedelta(minutes=5))
    assert (await run(conn)).payment_failures == 2
    [dd, card] = await tickets(conn)
    assert dd["rule_key"] == f"dd_collection:{collection}" and card["rule_key"] == f"autopay:{intent}"
    assert (dd["customer_id"], dd["partner_id"], card["customer_id"], card["partner_id"]) == (cid, pid, cid, pid)
    assert dd["subject"].startswith("Direct debit failed: 30.00 EUR for ") and "AC04 account closed" in dd["body"]
    assert card["subject"] == "Autopay failed: 30.00 EUR" and "card_declined" in card["body"]
    assert (await run(conn)).payment_failures == 0
    assert (await run(conn, NOW + dt.timedelta(minutes=3))).payment_failures == 0


async def test_no_payment_failure_ticket_while_they_are_off(conn: asyncpg.Connection) -> None:
    await setting(conn, payment_failure_tickets=False)
    pid = await partner(conn)
    cid = await customer(conn, pid, 1)
    await failed_collection(conn, cid, pid)
    await failed_autopay(conn, cid, NOW - dt.timedelta(minutes=5))
    assert (await run(conn)).payment_failures == 0
    assert await tickets(conn) == []


# -- 4. routers out of sync ----------------------------------------------------------------------

async def router(conn: Connection, name: str, *, last_ok: dt.datetime | None, error: str | None,
                 reachable: bool = True) -> int:
    rid: int = await conn.fetchval("INSERT INTO routers (name, host, username, password, created_at) "
                                   "VALUES ($1, '10.0.0.1', 'api', 'lm1:x', $2) RETURNING id",
                                   name, NOW - dt.timedelta(days=30))
    await conn.execute("INSERT INTO router_sync (router_id, reachable, last_attempt_at, last_success_at, last_error) "
                       "VALUES ($1, $2, $3, $4, $5)", rid, reachable, NOW, last_ok, error)
    return rid


async def test_a_router_out_of_sync_past_the_threshold_opens_one_ticket_per_episode(
        conn: asyncpg.Connection) -> None:
    since = NOW - dt.timedelta(minutes=30)
    rid = await router(conn, "core-1", last_ok=since, error=None, reachable=False)
    await router(conn, "core-2", last_ok=NOW - dt.timedelta(days=2), error=None)  # in step: its runs succeed
    assert (await run(conn)).router_drift == 0  # 30 minutes: below the 60 of the default
    later = NOW + dt.timedelta(minutes=31)
    assert (await run(conn, later)).router_drift == 1
    assert (await run(conn, later + dt.timedelta(minutes=5))).router_drift == 0  # the same episode
    [t] = await tickets(conn)
    assert t["rule_key"] == f"router_drift:{rid}:{since.isoformat()}" and t["customer_id"] is None
    assert t["subject"] == "Router core-1 out of sync for 61 minutes" and "does not answer" in t["body"]
    # back in step, then failing again: a new episode
    ok = later + dt.timedelta(minutes=10)
    await conn.execute("UPDATE router_sync SET reachable = true, last_success_at = $2, last_error = 'trap' "
                       "WHERE router_id = $1", rid, ok)
    assert (await run(conn, ok + dt.timedelta(minutes=59))).router_drift == 0
    assert (await run(conn, ok + dt.timedelta(minutes=61))).router_drift == 1
    assert "its last run failed: trap" in (await tickets(conn))[-1]["body"]


async def test_no_router_ticket_while_router_drift_minutes_is_0(conn: asyncpg.Connection) -> None:
    await setting(conn, router_drift_minutes=0)
    await router(conn, "core-1", last_ok=NOW - dt.timedelta(days=1), error="trap")
    assert (await run(conn)).router_drift == 0
    await setting(conn, router_drift_minutes=10)
    await conn.execute("UPDATE routers SET enabled = false")
    assert (await run(conn)).router_drift == 0  # a disabled router is not expected in step
    assert await tickets(conn) == []


async def test_the_job_runs_every_minute_one_at_a_time_and_opens_the_tickets(db_url: str) -> None:
    found = jobs.DECLARED["tickets.automatic"]
    assert (found.schedule, found.concurrency) == ("* * * * *", 1)
    pool = await db.create_pool(DatabaseSettings(), db_url, 2)
    try:
        async with pool.acquire() as c:
            rid = await router(c, "edge-1", last_ok=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), error="trap")
        await automatic.automatic_tickets(jobs.Context(1, "tickets.automatic", {}, 1, pool, Settings(),
                                                       structlog.get_logger()))
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM tickets WHERE rule_key LIKE $1",
                                    f"router_drift:{rid}:%") == 1
    finally:
        await pool.close()
