"""Property tests of the ledger against a real PostgreSQL (hypothesis): random sequences of runs,
payments (recorded and taken back through admin/payments/record.py), credit notes and voids for a
customer, and after each sequence the invariants:

- every credit's allocations are within its amount, every debt's within its total;
- every document's totals are the sums of its lines, and an invoice's total is what it posted;
- the ledger balances: the balance (credits less debits) is what credits have left unallocated
  less what debts have left open, and the statement walks to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from decimal import Decimal

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admin.auth.store import Connection
from admin.billing import ledger, run
from admin.billing.ledger import LedgerError
from admin.payments import record
from daemons import db

COUNTER = itertools.count(1)
MONTHS = [dt.date(2026, m, 1) for m in range(2, 13)]

op = st.one_of(
    st.tuples(st.just("run"), st.sampled_from(MONTHS)),
    st.tuples(st.just("pay"), st.decimals("0.01", "150.00", places=2)),
    st.tuples(st.just("credit"), st.decimals("0.01", "60.00", places=2)),
    st.tuples(st.just("void"), st.integers(0, 5)),
    st.tuples(st.just("item"), st.decimals("0.00", "99.99", places=2)),
    st.tuples(st.just("take_back"), st.integers(0, 5)),
)


async def scenario(url: str, ops: list[tuple[str, object]], price: Decimal, inclusive: bool) -> None:
    n = next(COUNTER)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    try:
        async with pool.acquire() as conn:
            partner = await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", f"P{n}")
            group = await conn.fetchval("SELECT id FROM tax_groups WHERE name = 'prop VAT'")
            if group is None:
                rate = await conn.fetchval("INSERT INTO tax_rates (name, percent) VALUES ('prop 19', 19) RETURNING id")
                group = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ('prop VAT') RETURNING id")
                await conn.execute("INSERT INTO tax_group_rates VALUES ($1, $2)", group, rate)
            tariff = await conn.fetchval(
                "INSERT INTO tariffs (name, download_kbps, upload_kbps, price, tax_group_id, price_includes_tax) "
                "VALUES ($1, 1000, 1000, $2, $3, $4) RETURNING id", f"T{n}", price, group, inclusive)
            cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, 'X') "
                                      "RETURNING id", partner, f"P{n}")
            await conn.execute("UPDATE customer_billing SET billing_day = 1 WHERE customer_id = $1", cid)
            await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, start_date) "
                               "VALUES ($1, $2, $3, 'pw', '2026-01-17')", cid, tariff, f"prop{n}")
        for kind, arg in ops:
            async with pool.acquire() as conn:
                invoices = [r["id"] for r in await conn.fetch(
                    "SELECT id FROM documents WHERE customer_id = $1 AND kind IN ('invoice', 'receipt') ORDER BY id",
                    cid)]
                try:
                    if kind == "run":
                        assert isinstance(arg, dt.date)
                        await run.run(pool, arg, partner)
                    elif kind == "pay":
                        await record.record(conn, record.NewPayment(cid, Decimal(str(arg)), dt.date(2026, 6, 1),
                                                                    "cash"), today=dt.date(2026, 6, 1))
                    elif kind == "take_back":
                        assert isinstance(arg, int)
                        payments = [r["id"] for r in await conn.fetch(
                            "SELECT id FROM payments WHERE customer_id = $1 ORDER BY id", cid)]
                        if payments:
                            await record.reverse(conn, payments[arg % len(payments)], "the cheque bounced",
                                                 today=dt.date(2026, 6, 1))
                    elif kind == "credit" and invoices:
                        async with conn.transaction():
                            await ledger.credit_note(conn, invoices[0], "goodwill", amount=Decimal(str(arg)))
                    elif kind == "void" and invoices:
                        assert isinstance(arg, int)
                        async with conn.transaction():
                            await ledger.void_document(conn, invoices[arg % len(invoices)], "mistake")
                    elif kind == "item" and Decimal(str(arg)) > 0:
                        await ledger.add_next_invoice_item(conn, cid, "Extra", Decimal(1), Decimal(str(arg)))
                except (LedgerError, run.RunError, record.PaymentError):
                    pass  # refused (nothing left to credit, void twice, ...): refused as a whole
        async with pool.acquire() as conn:
            await check(conn, cid)
    finally:
        await pool.close()


async def check(conn: Connection, cid: int) -> None:
    over = await conn.fetch(
        "SELECT t.id FROM transactions t LEFT JOIN allocations a ON a.credit_id = t.id WHERE t.customer_id = $1 "
        "AND t.direction = 'credit' GROUP BY t.id HAVING coalesce(sum(a.amount), 0) NOT BETWEEN 0 AND t.amount", cid)
    assert over == []
    paid = await conn.fetch("SELECT id FROM billing_documents_state WHERE customer_id = $1 AND paid NOT BETWEEN 0 "
                            "AND total", cid)
    assert paid == []
    for doc in await conn.fetch("SELECT * FROM documents WHERE customer_id = $1", cid):
        sums = await conn.fetchrow("SELECT coalesce(sum(net), 0) AS net, coalesce(sum(tax), 0) AS tax, "
                                   "coalesce(sum(gross), 0) AS gross FROM document_lines WHERE document_id = $1",
                                   doc["id"])
        assert sums is not None
        assert (sums["net"], sums["tax"], sums["gross"]) == (doc["subtotal"], doc["tax_total"], doc["total"])
        posted = await conn.fetchval("SELECT coalesce(sum(amount), 0) FROM transactions WHERE document_id = $1",
                                     doc["id"])
        if doc["kind"] != "proforma":
            assert posted == doc["total"], doc["number"]
    balance = await conn.fetchval(
        "SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0) FROM transactions "
        "WHERE customer_id = $1", cid)
    credit_rest = sum((r["rest"] for r in await conn.fetch(
        "SELECT t.amount - coalesce(sum(a.amount), 0) AS rest FROM transactions t "
        "LEFT JOIN allocations a ON a.credit_id = t.id WHERE t.customer_id = $1 AND t.direction = 'credit' "
        "AND t.kind <> 'reversal' AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id) "
        "GROUP BY t.id", cid)), Decimal(0))
    open_debts = sum((r["rest"] for r in await conn.fetch(
        "SELECT total - coalesce((SELECT sum(amount) FROM allocations WHERE target_document_id = d.id), 0) AS rest "
        "FROM documents d WHERE d.customer_id = $1 AND d.kind = 'invoice' "
        "AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)", cid)), Decimal(0))
    open_debts += sum((r["rest"] for r in await conn.fetch(
        "SELECT t.amount - coalesce((SELECT sum(amount) FROM allocations WHERE target_transaction_id = t.id), 0) "
        "AS rest FROM transactions t WHERE t.customer_id = $1 AND t.direction = 'debit' AND t.document_id IS NULL "
        "AND t.kind <> 'reversal' AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id)", cid)),
        Decimal(0))
    assert balance == credit_rest - open_debts
    assert (await ledger.statement(conn, cid)).balance == balance


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=10),
       price=st.decimals("0.00", "250.00", places=2), inclusive=st.booleans())
def test_the_ledger_balances_whatever_happens(db_url: str, ops: list[tuple[str, object]], price: Decimal,
                                              inclusive: bool) -> None:
    asyncio.run(scenario(db_url, ops, price, inclusive))
