"""Billing against a real PostgreSQL: runs, the ledger's operations, dunning, the invariants."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.billing import collect, ledger, run
from daemons import db

D = Decimal
MARCH_15 = dt.date(2026, 3, 15)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=1, max_size=3, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def vat(conn: Connection, percent: str = "20") -> int:
    rate = await conn.fetchval("INSERT INTO tax_rates (name, percent) VALUES ($1, $2) RETURNING id",
                               f"VAT {percent}%", D(percent))
    group: int = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ($1) RETURNING id", f"VAT {percent}")
    await conn.execute("INSERT INTO tax_group_rates VALUES ($1, $2)", group, rate)
    return group


async def customer(conn: Connection, n: int, *, price: str = "31.00", start: dt.date = MARCH_15,
                   tax_group: int | None = None, billing_type: str = "recurring", partner: int | None = None) -> int:
    """A customer with one service of a tariff of ``price`` a month from ``start``, billed on the 1st."""
    partner = partner or await conn.fetchval(
        "INSERT INTO partners (name) VALUES ('Main') ON CONFLICT (name) DO UPDATE SET name = excluded.name "
        "RETURNING id")
    tariff = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps, price, tax_group_id) VALUES ($1, 10000, 2000, $2, $3) "
        "ON CONFLICT (name) DO UPDATE SET price = excluded.price RETURNING id", f"Home {price}", D(price), tax_group)
    cid: int = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) RETURNING id",
                                   partner, f"C{n:05d}", f"Customer {n}")
    await conn.execute("UPDATE customer_billing SET billing_day = 1, billing_type = $2 WHERE customer_id = $1",
                       cid, billing_type)
    await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, start_date) "
                       "VALUES ($1, $2, $3, 'pw', $4)", cid, tariff, f"user{n}", start)
    return cid


async def balance(conn: Connection, cid: int) -> Decimal:
    return D(await conn.fetchval("SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0) "
                                 "FROM transactions WHERE customer_id = $1", cid))


async def test_first_period_is_prorated_then_nothing_is_billed_twice(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, tax_group=await vat(conn))
    summary = await run.run(pool, MARCH_15)
    assert (summary.status, summary.customers, summary.documents) == ("issued", 1, 1)
    async with pool.acquire() as conn:
        doc = await conn.fetchrow("SELECT * FROM documents WHERE customer_id = $1", cid)
        assert doc is not None
        # 17 of March's 31 days of 31.00 net, 20 % VAT on top
        assert (doc["number"], doc["subtotal"], doc["tax_total"], doc["total"]) == ("202601000001", D("17.00"),
                                                                                   D("3.40"), D("20.40"))
        assert (doc["period_start"], doc["period_end"], doc["due_on"]) == (MARCH_15, dt.date(2026, 4, 1),
                                                                           dt.date(2026, 3, 30))
        assert await balance(conn, cid) == D("-20.40")
    again = await run.run(pool, MARCH_15)
    assert again.nothing and again.describe() == "Nothing to bill on 2026-03-15."
    april = await run.run(pool, dt.date(2026, 4, 1))
    assert april.totals == {"EUR": D("37.20")}
    async with pool.acquire() as conn:
        numbers = [r["number"] for r in await conn.fetch("SELECT number FROM documents ORDER BY id")]
        assert numbers == ["202601000001", "202601000002"]
        lines = await conn.fetch("SELECT * FROM document_lines ORDER BY document_id, position")
        assert all(line["net"] + line["tax"] == line["gross"] for line in lines)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE transactions SET amount = 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM documents")


async def test_a_preview_waits_is_cancelled_and_made_again(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await customer(conn, 1)
    first = await run.preview(pool, MARCH_15)
    assert first.totals == {"EUR": D("17.00")}
    with pytest.raises(run.RunError, match="is preview already"):
        await run.preview(pool, MARCH_15)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM transactions") == 0  # a preview writes nothing financial
        await run.cancel(conn, first.run_id or 0)
    second = await run.preview(pool, MARCH_15)
    issued = await run.confirm(pool, second.run_id or 0)
    assert issued.documents == 1
    with pytest.raises(run.RunError, match="nothing to confirm"):
        await run.confirm(pool, second.run_id or 0)


async def test_payment_pays_oldest_first_overpayment_stays_and_void_releases(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1)
    await run.run(pool, MARCH_15)
    await run.run(pool, dt.date(2026, 4, 1))
    async with pool.acquire() as conn, conn.transaction():
        await ledger.record_payment(conn, cid, D("20.00"), dt.date(2026, 4, 2), method="cash", idempotency_key="p1")
    async with pool.acquire() as conn:
        states = [(r["number"], r["status"], r["open"]) for r in await conn.fetch(
            "SELECT d.number, s.status, s.open FROM documents d JOIN billing_documents_state s USING (id) "
            "WHERE d.kind = 'invoice' ORDER BY d.id")]
        # (April 2026 is past: what is open on it is overdue)
        assert states == [("202601000001", "paid", D("0")), ("202601000002", "overdue", D("28.00"))]
        # the same payment again (a retried request) changes nothing
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("20.00"), dt.date(2026, 4, 2), method="cash",
                                        idempotency_key="p1")
        assert await balance(conn, cid) == D("-28.00")
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("30.00"), dt.date(2026, 4, 3), method="bank transfer")
        assert await balance(conn, cid) == D("2.00")  # the overpayment stays on the balance
        april = await conn.fetchval("SELECT id FROM documents WHERE number = '202601000002'")
        async with conn.transaction():
            await ledger.void_document(conn, april, "wrong plan", "test")
        assert await balance(conn, cid) == D("33.00")  # 50 paid, 17 owed
        state = await conn.fetchrow("SELECT status, paid FROM billing_documents_state WHERE id = $1", april)
        assert state is not None
        assert (state["status"], state["paid"]) == ("void", D("0"))
        statement = await ledger.statement(conn, cid)
        assert statement.balance == D("33.00")
        assert [e.balance for e in statement.entries] == [D("-17.00"), D("-48.00"), D("-28.00"), D("2.00"),
                                                          D("33.00")]


async def test_allocations_never_exceed_and_credit_notes_keep_taxes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, tax_group=await vat(conn))
    await run.run(pool, dt.date(2026, 4, 1))  # the stub 15-31 March and April: 20.40 + 37.20
    async with pool.acquire() as conn:
        invoice = await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice'")
        async with conn.transaction():
            note = await ledger.credit_note(conn, invoice, "outage", "test", D("12.00"))
        lines = await conn.fetch("SELECT net, tax, gross FROM document_lines WHERE document_id = $1", note)
        assert sum(r["gross"] for r in lines) == D("12.00")
        assert sum(r["tax"] for r in lines) == D("2.00")  # 20 % VAT inside 12.00, split over the lines
        assert await balance(conn, cid) == D("-45.60")
        credit = await conn.fetchval("SELECT id FROM transactions WHERE kind = 'credit_note'")
        with pytest.raises(asyncpg.CheckViolationError, match="allocation beyond"):
            await conn.execute("INSERT INTO allocations (customer_id, credit_id, target_document_id, amount) "
                               "VALUES ($1, $2, $3, 1)", cid, credit, invoice)
        with pytest.raises(ledger.LedgerError, match="left to credit"):
            async with conn.transaction():
                await ledger.credit_note(conn, invoice, "again", "test", D("50.00"))


async def test_prepaid_daily_charges_each_day_once_and_dunning_blocks_then_lets_back(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, price="40.00", start=dt.date(2026, 4, 1), billing_type="prepaid_daily")
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("20.00"), dt.date(2026, 4, 1), method="cash")
    summary = await run.charge_prepaid(pool, dt.date(2026, 4, 10))
    assert summary.charges == 10
    assert (await run.charge_prepaid(pool, dt.date(2026, 4, 10))).charges == 0
    async with pool.acquire() as conn:
        amounts = [r["amount"] for r in await conn.fetch("SELECT amount FROM transactions WHERE kind = 'charge' "
                                                         "ORDER BY posted_on")]
        assert amounts[:3] == [D("1.33"), D("1.34"), D("1.33")]  # 40/30 a day, cumulative rounding
        assert (await collect.run(conn, dt.date(2026, 4, 10))).actions == {}
    await run.charge_prepaid(pool, dt.date(2026, 4, 15))  # 15 days x 1.333 = 20.00: the deposit is used up
    async with pool.acquire() as conn:
        assert await balance(conn, cid) == D("0.00")
        blocked = await collect.run(conn, dt.date(2026, 4, 15))
        assert blocked.actions == {"block": 1}
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", cid) == "blocked"
        reason = await conn.fetchval("SELECT reason FROM customer_status_changes WHERE customer_id = $1", cid)
        assert reason == "dunning"
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("40.00"), dt.date(2026, 4, 16), method="card")
        assert (await collect.run(conn, dt.date(2026, 4, 16), [cid])).actions == {"unblock": 1}
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", cid) == "active"


async def test_dunning_leaves_a_block_staff_set_and_waits_for_working_days(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1)
        other = await customer(conn, 2)
        await conn.execute("UPDATE billing_settings SET holiday_country = 'DE'")
        await conn.execute("UPDATE customer_billing SET block_after_due_days = 2")
    await run.run(pool, dt.date(2026, 4, 1))  # due 16 April, blocked two days after: Saturday 18th
    async with pool.acquire() as conn:
        await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = $1", other)  # by staff
        assert (await collect.run(conn, dt.date(2026, 4, 16))).actions == {}
        # 18 April 2026 is a Saturday: nobody is blocked until Monday 20th
        assert (await collect.run(conn, dt.date(2026, 4, 18))).actions == {}
        assert (await collect.run(conn, dt.date(2026, 4, 20))).actions == {"block": 1}
        async with conn.transaction():
            for c in (cid, other):
                await ledger.record_payment(conn, c, D("48.00"), dt.date(2026, 4, 21), method="cash")
        assert (await collect.run(conn, dt.date(2026, 4, 21))).actions == {"unblock": 1}
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", other) == "blocked"


async def test_the_demo_is_billed_once_and_mostly_paid(pool: asyncpg.Pool, db_url: str) -> None:
    from admin.billing import demo
    from daemons import demo as demo_data

    loader = await db.connect(db_url)
    try:
        await demo_data.load(loader, 50, seed=3)
    finally:
        await loader.close()
    today = dt.date(2026, 12, 2)
    first = await demo.setup(pool, today)
    assert "issued" in first and "paid" in first
    async with pool.acquire() as conn:
        invoices = await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'invoice'")
        assert invoices > 40  # the active and blocked customers (new ones are not billed)
        unpaid = await conn.fetchval("SELECT count(*) FROM billing_documents_state WHERE kind = 'invoice' "
                                     "AND status <> 'paid'")
        assert 0 < unpaid < invoices / 3
    again = await demo.setup(pool, today)
    assert "Nothing to bill" in again
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE kind = 'invoice'") == invoices


async def test_a_mid_month_plan_change_credits_the_unused_days_and_charges_the_new_plan(pool: asyncpg.Pool) -> None:
    """Splynx's example: 200 a month in a 30-day month, changed to 100 on the 16th: 15 days x 6.67
    credited (100.00: the cumulative rule rounds the total, not each day), 15 days x 3.33 charged (50.00)."""
    from admin.billing import changes

    async with pool.acquire() as conn:
        cid = await customer(conn, 1, price="200.00", start=dt.date(2026, 4, 1))
        cheaper = await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                      "VALUES ('Small', 1000, 1000, 100) RETURNING id")
        await conn.execute("UPDATE billing_settings SET downgrade_fee = 5")
    await run.run(pool, dt.date(2026, 4, 1))
    async with pool.acquire() as conn:
        service = await conn.fetchval("SELECT id FROM services WHERE customer_id = $1", cid)
        async with conn.transaction():
            issued = await changes.change_plan(conn, service, cheaper, dt.date(2026, 4, 16), "test")
        docs = await conn.fetch("SELECT kind, total, related_id, period_start, period_end FROM documents "
                                "WHERE id = ANY($1::bigint[]) ORDER BY id", issued)
        assert [(d["kind"], d["total"]) for d in docs] == [("credit_note", D("100.00")), ("invoice", D("55.00"))]
        assert (docs[0]["period_start"], docs[0]["period_end"]) == (dt.date(2026, 4, 16), dt.date(2026, 5, 1))
        assert await balance(conn, cid) == D("-155.00")  # 200 - 100 + 50 + the 5.00 downgrade fee
        assert await conn.fetchval("SELECT tariff_id FROM services WHERE id = $1", service) == cheaper
    may = await run.run(pool, dt.date(2026, 5, 1))
    assert may.totals == {"EUR": D("100.00")}  # the next period at the new plan


async def test_a_pause_credits_the_charged_days_and_the_next_period_leaves_them_out(pool: asyncpg.Pool) -> None:
    from admin.billing import changes

    async with pool.acquire() as conn:
        cid = await customer(conn, 1, price="30.00", start=dt.date(2026, 6, 1))
    await run.run(pool, dt.date(2026, 6, 1))  # June: 30 days, 30.00
    async with pool.acquire() as conn:
        service = await conn.fetchval("SELECT id FROM services WHERE customer_id = $1", cid)
        async with conn.transaction():
            issued = await changes.pause(conn, service, dt.date(2026, 6, 21), dt.date(2026, 7, 11), "vacation")
        assert [await conn.fetchval("SELECT total FROM documents WHERE id = $1", i) for i in issued] == [D("10.00")]
    july = await run.run(pool, dt.date(2026, 7, 1))
    assert july.totals == {"EUR": D("20.32")}  # 21 of July's 31 days of 30.00 (10 paused)
    async with pool.acquire() as conn:
        assert await balance(conn, cid) == D("-40.32")


async def test_the_next_invoice_says_each_line_and_why(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=dt.date(2027, 3, 15))  # ahead: the item, added today, is in
        await ledger.add_next_invoice_item(conn, cid, "Router", D(1), D("59.00"))
        date, lines = await run.next_invoice(conn, cid, dt.date(2027, 3, 10))
    assert date == dt.date(2027, 4, 1)
    assert [(line.gross, line.reason.split(" ")[0]) for line in lines] == [
        (D("17.00"), "part"), (D("31.00"), "in"), (D("59.00"), "added")]


async def test_a_paid_proforma_becomes_the_tax_invoice_and_is_not_billed_again(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=dt.date(2027, 3, 1), tax_group=await vat(conn))
        async with conn.transaction():
            proforma = await run.issue_proforma(conn, cid, dt.date(2027, 2, 20))
        assert proforma is not None
        assert await balance(conn, cid) == D("0")  # no balance change, no tax point
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("37.20"), dt.date(2027, 2, 25), method="card",
                                        document_id=proforma)
        invoice = await conn.fetchrow("SELECT d.id, s.status FROM documents d JOIN billing_documents_state s "
                                      "USING (id) WHERE d.related_id = $1 AND d.kind = 'invoice'", proforma)
        assert invoice is not None and invoice["status"] == "paid"
        assert await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", proforma) == "paid"
        assert await balance(conn, cid) == D("0.00")
    assert (await run.run(pool, dt.date(2027, 3, 1))).nothing


async def test_the_daily_job_issues_automatically_after_the_confirmation_period(pool: asyncpg.Pool) -> None:
    import structlog

    from admin.billing import jobs
    from admin.worker.jobs import Context
    from daemons.config import Settings

    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=dt.date(2026, 11, 20))
        await conn.execute("UPDATE billing_settings SET auto_issue = true, confirmation_days = 3")
    ctx = Context(1, "billing.daily", {}, 1, pool, Settings(), structlog.get_logger())
    await jobs.daily(ctx)
    async with pool.acquire() as conn:
        waiting = await conn.fetchrow("SELECT id, status, confirm_after FROM billing_runs")
        assert waiting is not None and waiting["status"] == "preview"  # waits three days for a look
        assert await balance(conn, cid) == D("0")
        await conn.execute("UPDATE billing_runs SET confirm_after = now() - interval '1 minute'")
    await jobs.daily(ctx)  # the next day: the preview's time has come
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM billing_runs WHERE id = $1", waiting["id"]) == "issued"
        assert await balance(conn, cid) < 0


async def test_changing_the_billing_type_credits_what_was_charged_ahead_and_starts_over(pool: asyncpg.Pool) -> None:
    from admin.billing import changes

    async with pool.acquire() as conn:
        cid = await customer(conn, 1, price="30.00", start=dt.date(2026, 6, 1))
    await run.run(pool, dt.date(2026, 6, 1))  # June in advance: 30.00
    async with pool.acquire() as conn:
        async with conn.transaction():
            notes = await changes.change_billing_type(conn, cid, "prepaid_daily", dt.date(2026, 6, 21))
        assert [await conn.fetchval("SELECT total FROM documents WHERE id = $1", n) for n in notes] == [D("10.00")]
        async with conn.transaction():
            await ledger.record_payment(conn, cid, D("30.00"), dt.date(2026, 6, 21), method="cash")
    prepaid = await run.charge_prepaid(pool, dt.date(2026, 6, 30))
    assert (prepaid.charges, prepaid.totals) == (10, {"EUR": D("10.00")})  # 21-30 June, a day at a time
    assert (await run.run(pool, dt.date(2026, 7, 1))).nothing  # no longer billed by runs
    async with pool.acquire() as conn:
        assert await balance(conn, cid) == D("0.00")  # 30 paid, 20 of June's invoice and 10 of days
        with pytest.raises(ledger.LedgerError, match="already"):
            await changes.change_billing_type(conn, cid, "prepaid_daily", dt.date(2026, 7, 1))
