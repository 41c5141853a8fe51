"""The events outbox against a real PostgreSQL: each trigger writes its event (with the right partner
and the catalogue's fields), a billing run's COPY writes one event per document, dispatch fans each
event out once under concurrent dispatchers and never to another partner's webhook, RADIUS sessions
become events behind their cursor, and pruning keeps what is pending."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.billing import ledger, run
from admin.notifications import dispatch, event_types, events_store
from admin.payments import record
from admin.payments.record import NewPayment
from admin.tickets import store as tickets_store
from admin.tickets.automation import Author
from daemons import db
from tests.db.test_billing import customer

D = Decimal
APRIL = dt.date(2026, 4, 1)
NOW = dt.datetime(2026, 4, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def partner(conn: Connection, name: str) -> int:
    value: int = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", name)
    return value


async def events(conn: Connection, after: int = 0) -> list[tuple[str, int | None, dict[str, object]]]:
    rows = await conn.fetch("SELECT subject || '.' || name AS type, partner_id, payload FROM events "
                            "WHERE id > $1 ORDER BY id", after)
    return [(r["type"], r["partner_id"], r["payload"]) for r in rows]


async def last_id(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
    return value


def assert_catalogued(found: list[tuple[str, int | None, dict[str, object]]]) -> None:
    for type_, _, payload in found:
        assert type_ in event_types.BY_TYPE, type_
        assert set(payload) == {f.name for f in event_types.BY_TYPE[type_].fields}, type_
        assert set(event_types.BY_TYPE[type_].example) == set(payload), type_


async def webhook(conn: Connection, events_: list[str], partner_id: int | None = None, *, enabled: bool = True) -> int:
    value: int = await conn.fetchval(
        "INSERT INTO webhooks (partner_id, url, events, secret, enabled) VALUES ($1, 'http://127.0.0.1:9/', $2, "
        "'lm1:x', $3) RETURNING id", partner_id, events_, enabled)
    return value


async def test_each_trigger_writes_its_event_with_its_partner_and_the_catalogue_s_fields(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        other = await partner(conn, "Other")
        cid = await customer(conn, 1, start=APRIL)
        main = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        assert [t for t, _, _ in await events(conn)] == ["customer.created", "service.created"]
        mark = await last_id(conn)
        await conn.execute("UPDATE customers SET name = 'Ann' WHERE id = $1", cid)
        await conn.execute("UPDATE customers SET name = 'Ann' WHERE id = $1", cid)  # no change: no event
        await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = $1", cid)
        await conn.execute("UPDATE services SET login = 'ann' WHERE customer_id = $1", cid)
        found = await events(conn, mark)
        assert [t for t, _, _ in found] == ["customer.updated", "customer.updated", "customer.status_changed",
                                            "service.updated"]
        assert found[2][2]["from"] == "active" and found[2][2]["to"] == "blocked"
        other_cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, 'X1', 'Bo') "
                                        "RETURNING id", other)
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        invoice = await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice'")
        paid = await record.record(conn, NewPayment(cid, D("31.00"), APRIL, "cash", document_id=invoice, key="k1"),
                                   today=APRIL)
        await record.reverse(conn, paid.id, "bounced", today=APRIL)
        await ledger.void_document(conn, invoice, "issued twice")
        found = await events(conn)
        assert_catalogued(found)
        types = [t for t, _, _ in found]
        for expected in ("invoice.created", "receipt.created", "payment.recorded", "payment.reversed",
                         "receipt.voided", "invoice.voided"):
            assert expected in types, (expected, types)
        # every event is its customer's partner's
        assert {p for t, p, payload in found if payload.get("customer_id") == cid
                or (payload.get("id") == cid and t.startswith("customer."))} == {main}
        assert [(t, p) for t, p, payload in found if payload.get("id") == other_cid and t.startswith("customer")] \
            == [("customer.created", other)]
        total = next(payload["total"] for t, _, payload in found if t == "invoice.created")
        amount = next(payload["amount"] for t, _, payload in found if t == "payment.recorded")
        assert (total, amount) == (31.0, 31.0)  # JSON numbers in the outbox; decimal strings on the wire
        text = await conn.fetchval("SELECT payload::text FROM events WHERE name = 'recorded'")
        assert event_types.decode_payload(text)["amount"] == D("31.0000")


async def test_tickets_and_their_messages_are_events_and_notes_are_not(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
        main = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        mark = await last_id(conn)
        now = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
        created = await tickets_store.create_ticket(conn, tickets_store.NewTicket(
            subject="Slow", body="Since Monday", source="portal", partner_id=main, customer_id=cid), now=now)
        assert created is not None
        for author in (Author.STAFF, Author.NOTE, Author.CUSTOMER, Author.SYSTEM):
            await tickets_store.add_message(conn, created.ticket_id, tickets_store.NewMessage(author, "..."), now=now)
        found = await events(conn, mark)
        assert_catalogued(found)
        assert [(t, p, payload.get("author")) for t, p, payload in found] == [
            ("ticket.created", main, None), ("ticket.message", main, "customer"),  # its first message
            ("ticket.message", main, "staff"), ("ticket.message", main, "customer")]


async def test_a_billing_run_sized_copy_of_documents_writes_one_event_per_document(pool: asyncpg.Pool) -> None:
    n = 20_000
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
        main = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        mark = await last_id(conn)
        rows = [("invoice", cid, main, f"B{i:06d}", APRIL, APRIL + dt.timedelta(days=14), "EUR", D("10.00"),
                 D("2.00"), D("12.00"), "recurring") for i in range(n)]
        started = time.perf_counter()
        await conn.copy_records_to_table("documents", records=rows, columns=[
            "kind", "customer_id", "partner_id", "number", "issued_on", "due_on", "currency", "subtotal", "tax_total",
            "total", "origin"])
        seconds = time.perf_counter() - started
        counts = await conn.fetchrow(
            "SELECT count(*) AS events, count(DISTINCT payload->>'id') AS documents, "
            "count(*) FILTER (WHERE partner_id = $2 AND subject = 'invoice' AND name = 'created') AS right "
            "FROM events WHERE id > $1", mark, main)
        assert counts is not None and (counts["events"], counts["documents"], counts["right"]) == (n, n, n)
        ordered = await conn.fetchval(
            "SELECT bool_and(ok) FROM (SELECT (payload->>'id')::bigint > lag((payload->>'id')::bigint, 1, 0) "
            "OVER (ORDER BY id) AS ok FROM events WHERE id > $1) x", mark)
        assert ordered  # in the documents' order
    print(f"COPY of {n} documents with their events: {seconds:.2f} s")
    assert seconds < 10


async def test_dispatch_fans_out_once_under_two_concurrent_dispatchers(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
        main = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        every = await webhook(conn, ["*"])
        invoices = await webhook(conn, ["invoice.*"], main)
        created = await webhook(conn, ["invoice.created", "customer.created"], main)
        await webhook(conn, ["*"], main, enabled=False)
        await conn.copy_records_to_table("documents", records=[
            ("invoice", cid, main, f"B{i:05d}", APRIL, "EUR", D("1.00"), D("0"), D("1.00"), "recurring")
            for i in range(3000)], columns=["kind", "customer_id", "partner_id", "number", "issued_on", "currency",
                                            "subtotal", "tax_total", "total", "origin"])
        total = await conn.fetchval("SELECT count(*) FROM events")

    published: list[tuple[str, str, dict[str, object]]] = []

    async def dispatcher() -> int:
        done = 0
        async with pool.acquire() as conn:
            while n := await dispatch.dispatch(conn, limit=250, now=NOW,
                                               publish=lambda s, n, p: published.append((s, n, p))):
                done += n
                await asyncio.sleep(0)
        return done

    counts = await asyncio.gather(dispatcher(), dispatcher())
    assert sum(counts) == total and all(counts), counts  # both took a share, together each event once
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE dispatched_at IS NULL") == 0
        per = {r["webhook_id"]: r["count"] for r in await conn.fetch(
            "SELECT webhook_id, count(*) FROM webhook_deliveries GROUP BY webhook_id")}
        assert per == {every: total, invoices: 3000, created: 3001}
        assert await conn.fetchval("SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries "
                                   "GROUP BY webhook_id, event_id HAVING count(*) > 1) x") == 0
        # nothing is left for a third
        assert await dispatch.dispatch(conn, now=NOW) == 0
    assert len(published) == total
    payload = next(p for s, n, p in published if (s, n) == ("invoice", "created"))
    assert isinstance(payload["total"], Decimal) and payload["occurred_at"] and payload["event_id"]


async def test_a_partner_s_webhook_never_gets_another_partner_s_events(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        a, b = await partner(conn, "A"), await partner(conn, "B")
        hook_a, hook_b, hook_all = await webhook(conn, ["*"], a), await webhook(conn, ["customer.*"], b), \
            await webhook(conn, ["customer.created"])
        ca = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, 'A1', 'Ann') "
                                 "RETURNING id", a)
        cb = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, 'B1', 'Bo') "
                                 "RETURNING id", b)
        await conn.execute("UPDATE customers SET name = name || '!'")
        # an event of no partner: only the webhook of every partner may take it (none subscribes to tickets)
        await conn.execute("INSERT INTO events (subject, name, payload) VALUES ('ticket', 'created', '{}')")
        assert await dispatch.dispatch(conn, now=NOW) == 5
        got = await conn.fetch(
            "SELECT d.webhook_id, e.subject || '.' || e.name AS type, (e.payload->>'id')::bigint AS id "
            "FROM webhook_deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id")
        assert [(r["webhook_id"], r["type"], r["id"]) for r in got] == [
            (hook_a, "customer.created", ca), (hook_all, "customer.created", ca),
            (hook_b, "customer.created", cb), (hook_all, "customer.created", cb),
            (hook_a, "customer.updated", ca), (hook_b, "customer.updated", cb)]
        assert hook_a and hook_b and hook_all


async def test_sessions_become_events_behind_their_cursor(pool: asyncpg.Pool) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    upto = now - dt.timedelta(minutes=1)
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
        main = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        service = await conn.fetchval("SELECT id FROM services WHERE customer_id = $1", cid)
        nas = await conn.fetchval("INSERT INTO nas (name, address, secret) VALUES ('bras-1', '10.0.0.1/32', 's') "
                                  "RETURNING id")
        await conn.execute("INSERT INTO event_cursors VALUES ('sessions', $1)", upto - dt.timedelta(minutes=5))

        async def session(key: str, started: dt.datetime, stopped: dt.datetime | None, sid: int | None) -> None:
            await conn.execute(
                "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, "
                "acct_session_id, framed_ip, updated_at, stopped_at, input_octets, output_octets, terminate_cause) "
                "VALUES ($1, $2, $3, $4, 'user1', $1, '100.64.0.9', $2, $5, 10, 20, $6)",
                key, started, sid, nas, stopped, "User-Request" if stopped else None)

        await session("old", upto - dt.timedelta(minutes=9), upto - dt.timedelta(minutes=4), service)  # stopped only
        await session("both", upto - dt.timedelta(minutes=3), upto - dt.timedelta(minutes=2), service)
        await session("open", upto - dt.timedelta(minutes=1), None, None)  # an unknown login: no partner
        await session("late", now - dt.timedelta(seconds=10), None, service)  # within the lag: next time
        await session("before", upto - dt.timedelta(minutes=20), upto - dt.timedelta(minutes=10), service)

        mark = await last_id(conn)
        since, written = await events_store.session_events(conn, upto, dt.timedelta(minutes=1))
        assert (since, written) == (upto - dt.timedelta(minutes=5), 4)
        found = await conn.fetch("SELECT name, partner_id, payload, occurred_at FROM events WHERE id > $1 ORDER BY id",
                                 mark)
        assert [(r["name"], r["payload"]["acct_unique_id"], r["partner_id"]) for r in found] == [
            ("stopped", "old", main), ("started", "both", main), ("stopped", "both", main), ("started", "open", None)]
        assert_catalogued([("session." + r["name"], r["partner_id"], r["payload"]) for r in found])
        stop = found[0]["payload"]
        assert (stop["customer_id"], stop["nas"], stop["framed_ip"], stop["octets"], stop["terminate_cause"]) == (
            cid, "bras-1", "100.64.0.9", {"input": 10, "output": 20}, "User-Request")
        assert found[1]["payload"]["stopped_at"] is None and found[1]["occurred_at"] == upto - dt.timedelta(minutes=3)
        assert await conn.fetchval("SELECT position FROM event_cursors WHERE name = 'sessions'") == upto
        assert await events_store.session_events(conn, upto, dt.timedelta(minutes=1)) == (upto, 0)  # nothing twice
        _, written = await events_store.session_events(conn, now + dt.timedelta(seconds=1), dt.timedelta(minutes=1))
        assert written == 1  # "late"


async def test_a_first_sessions_run_starts_a_minute_back(pool: asyncpg.Pool) -> None:
    upto = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    async with pool.acquire() as conn:
        since, written = await events_store.session_events(conn, upto, dt.timedelta(minutes=1))
        assert (since, written) == (upto - dt.timedelta(minutes=1), 0)


async def test_prune_keeps_recent_and_pending_events(pool: asyncpg.Pool) -> None:
    old = NOW - dt.timedelta(days=40)
    async with pool.acquire() as conn:
        hook = await webhook(conn, ["*"])
        ids = [await conn.fetchval("INSERT INTO events (subject, name, payload, occurred_at, dispatched_at) "
                                   "VALUES ('ticket', 'created', '{}', $1, $2) RETURNING id", at, dispatched)
               for at, dispatched in ((old, old), (old, old), (old, None), (NOW, NOW))]
        for event_id, status in ((ids[0], "delivered"), (ids[1], "pending"), (ids[3], "delivered")):
            delivery = await conn.fetchval("INSERT INTO webhook_deliveries (webhook_id, event_id, status) "
                                           "VALUES ($1, $2, $3) RETURNING id", hook, event_id, status)
            await conn.execute("INSERT INTO webhook_attempts (delivery_id, attempted_at) VALUES ($1, $2)",
                               delivery, old)
        before = NOW - dt.timedelta(days=30)
        assert await events_store.prune_events(conn, before, 1000) == 1  # the old, dispatched, settled one
        assert await events_store.prune_events(conn, before, 1000) == 0
        assert sorted(await conn.fetchval("SELECT array_agg(id) FROM events")) == ids[1:]
        # the old attempt of the recent (delivered) event goes; the pending delivery's stays
        assert await events_store.prune_attempts(conn, before, 1000) == 1
        assert await conn.fetchval("SELECT count(*) FROM webhook_attempts") == 1


def test_patterns_match_as_dispatch_s_sql_does() -> None:
    assert event_types.matches("*", "invoice.created")
    assert event_types.matches("invoice.*", "invoice.voided")
    assert not event_types.matches("invoice.*", "proforma.created")
    assert event_types.matches("invoice.created", "invoice.created")
    assert not event_types.matches("invoice.created", "invoice.voided")
    assert event_types.check_patterns(["invoice.*", "*", "payment.recorded"]) is None
    for bad in (["invoice"], ["Invoice.*"], ["*.created"], []):
        assert event_types.check_patterns(bad) is not None
    assert json.loads(event_types.to_json({"a": D("1.50")})) == {"a": "1.50"}
