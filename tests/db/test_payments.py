"""Payments' core against a real PostgreSQL: a payment is recorded once under any of its names,
pays what it names, takes dunning's block off in the same transaction, and is taken back by a
new entry."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from admin.auth.store import Connection
from admin.billing import collect, run
from admin.billing.periods import Period
from admin.payments import record
from admin.payments.record import NewPayment, PaymentError
from daemons import db
from tests.db.test_billing import balance, customer

D = Decimal
APRIL = dt.date(2026, 4, 1)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=4, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def status(conn: Connection, document_id: int) -> str:
    value: str = await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", document_id)
    return value


async def test_a_desk_payment_pays_its_invoice_and_a_repeat_of_its_key_writes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        invoice = await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice'")
        p = NewPayment(
            cid,
            D("31.00"),
            APRIL,
            "cash",
            receipt_number="R-77",
            payer="Ann",
            comment="at the desk",
            document_id=invoice,
            key="form-1",
            by="cashier",
        )
        first = await record.record(conn, p, today=APRIL)
        again = await record.record(conn, p, today=APRIL)
        assert first.created and not again.created and (again.id, again.receipt_id) == (first.id, first.receipt_id)
        assert await status(conn, invoice) == "paid" and await balance(conn, cid) == D("0.00")
        row = await conn.fetchrow("SELECT * FROM payments")
        assert row is not None
        assert (row["receipt_number"], row["payer"], row["source"], row["amount"]) == (
            "R-77",
            "Ann",
            "desk",
            D("31.00"),
        )
        assert await conn.fetchval("SELECT count(*) FROM transactions WHERE kind = 'payment'") == 1
        with pytest.raises(PaymentError, match="another customer or amount"):
            await record.record(conn, NewPayment(cid, D("30.00"), APRIL, "cash", key="form-1"))
        with pytest.raises(PaymentError, match="no payment type"):
            await record.record(conn, NewPayment(cid, D("1.00"), APRIL, "barter"))
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE payments SET amount = 1")


async def test_a_gateway_delivering_the_same_payment_at_once_records_it_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)

    async def deliver() -> record.Recorded:
        async with pool.acquire() as conn:
            return await record.record(
                conn,
                NewPayment(cid, D("12.50"), APRIL, "online", source="online", gateway="stripe", gateway_ref="pi_123"),
            )

    results = await asyncio.gather(*(deliver() for _ in range(4)))
    assert sum(r.created for r in results) == 1 and len({r.id for r in results}) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments") == 1
        assert await balance(conn, cid) == D("12.50")


async def test_a_payment_for_a_service_and_period_pays_that_charge_first(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=dt.date(2026, 3, 1))
    await run.run(pool, dt.date(2026, 3, 1))
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        march, april = [
            r["id"] for r in await conn.fetch("SELECT id FROM documents WHERE kind = 'invoice' ORDER BY id")
        ]
        service = await conn.fetchval("SELECT id FROM services WHERE customer_id = $1", cid)
        await record.record(
            conn,
            NewPayment(
                cid, D("31.00"), APRIL, "bank_transfer", service_id=service, period=Period(APRIL, dt.date(2026, 5, 1))
            ),
        )
        assert (await status(conn, march), await status(conn, april)) in {("overdue", "paid"), ("unpaid", "paid")}
        with pytest.raises(PaymentError, match="names the service"):
            await record.record(
                conn, NewPayment(cid, D("1.00"), APRIL, "cash", period=Period(APRIL, dt.date(2026, 5, 1)))
            )


async def test_paying_a_blocked_customers_debt_lets_it_back_at_commit_and_taking_it_back_reopens(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        cid = await customer(conn, 1, start=APRIL)
    await run.run(pool, APRIL)
    late = dt.date(2026, 4, 20)
    async with pool.acquire() as conn:
        assert (await collect.run(conn, late)).actions == {"block": 1}
        invoice = await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice'")
        paid = await record.record(conn, NewPayment(cid, D("31.00"), late, "card"), today=late)
        assert paid.dunning == ("unblock",)
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", cid) == "active"
        await record.reverse(conn, paid.id, "the card charge was disputed", "admin", today=late)
        assert await status(conn, invoice) == "overdue" and await balance(conn, cid) == D("-31.00")
        assert (
            await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", paid.receipt_id) == "void"
        )
        assert await conn.fetchval("SELECT status FROM customers WHERE id = $1", cid) == "blocked"
        with pytest.raises(PaymentError, match="taken back already"):
            await record.reverse(conn, paid.id, "again", "admin")
        # A new payment pays the invoice again; the ledger still says all of it.
        await record.record(conn, NewPayment(cid, D("31.00"), late, "cash"), today=late)
        assert await status(conn, invoice) == "paid" and await balance(conn, cid) == D("0.00")
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM transactions ORDER BY id")]
        assert kinds == ["charge", "payment", "reversal", "payment"]
