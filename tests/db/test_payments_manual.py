"""Manual payments in batches (admin/payments/manual.py) against a real PostgreSQL: a batch is
recorded all or none, says each refusal by its place, is recorded once when sent twice, and two
batches over the same customers at once neither deadlock nor record anything twice; the API's
Idempotency-Key rows (admin/idempotency_store.py) are claimed once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from admin import idempotency_store
from admin.auth.store import Connection
from admin.billing import run
from admin.payments import manual, record
from admin.payments.record import NewPayment
from daemons import db
from tests.db.test_billing import balance, customer

D = Decimal
APRIL = dt.date(2026, 4, 1)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_url, min_size=2, max_size=6, init=db.init_connection)
    try:
        yield p
    finally:
        await p.close()


async def count(conn: Connection, sql: str = "SELECT count(*) FROM payments") -> int:
    return int(await conn.fetchval(sql))


async def test_a_batch_is_recorded_all_or_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        a, b = await customer(conn, 1, start=APRIL), await customer(conn, 2, start=APRIL)
    await run.run(pool, APRIL)
    async with pool.acquire() as conn:
        invoice_b = await conn.fetchval("SELECT id FROM documents WHERE kind = 'invoice' AND customer_id = $1", b)
        before = (await balance(conn, a), await balance(conn, b))
        refused = [NewPayment(a, D("10.00"), APRIL, "cash", key="m:1:0"),
                   NewPayment(b, D("5.00"), APRIL, "barter", key="m:1:1"),
                   NewPayment(b, D("1.00"), APRIL, "cash", document_id=invoice_b + 999, key="m:1:2"),
                   NewPayment(a, D("2.00"), APRIL, "cash", key="m:1:3")]
        with pytest.raises(manual.BatchRefused) as e:
            await manual.record_all(conn, refused, today=APRIL)
        assert set(e.value.errors) == {1, 2}
        assert "no payment type" in e.value.errors[1] and "not one of this customer's" in e.value.errors[2]
        assert await count(conn) == 0
        assert await count(conn, "SELECT count(*) FROM documents WHERE kind = 'receipt'") == 0
        assert (await balance(conn, a), await balance(conn, b)) == before
        good = [NewPayment(a, D("10.00"), APRIL, "cash", key="m:2:0"),
                NewPayment(b, D("31.00"), APRIL, "bank_transfer", document_id=invoice_b, key="m:2:1")]
        done = await manual.record_all(conn, good, today=APRIL)
        assert [d.created for d in done] == [True, True]
        again = await manual.record_all(conn, good, today=APRIL)
        assert [d.created for d in again] == [False, False] and [d.id for d in again] == [d.id for d in done]
        assert await count(conn) == 2
        assert await conn.fetchval("SELECT status FROM billing_documents_state WHERE id = $1", invoice_b) == "paid"
        with pytest.raises(manual.BatchRefused):
            await manual.record_all(conn, [], today=APRIL)


async def test_batches_at_once_over_the_same_customers_record_each_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ids = [await customer(conn, n, start=APRIL) for n in range(1, 7)]

    async def batch(order: list[int], tag: str) -> list[record.Recorded]:
        async with pool.acquire() as conn:
            return await manual.record_all(conn, [NewPayment(cid, D("3.00"), APRIL, "cash", key=f"{tag}:{cid}")
                                                  for cid in order], today=APRIL)

    results = await asyncio.gather(batch(ids, "x"), batch(ids[::-1], "y"), batch(ids, "x"), batch(ids[::-1], "y"))
    assert sum(r.created for done in results for r in done) == 12
    async with pool.acquire() as conn:
        assert await count(conn) == 12
        for cid in ids:
            assert await balance(conn, cid) == D("6.00")


async def test_an_idempotency_key_is_claimed_once(pool: asyncpg.Pool) -> None:
    async def claim() -> object:
        async with pool.acquire() as conn:
            return await idempotency_store.claim(conn, "key:1", "k", "digest")

    claims = await asyncio.gather(*(claim() for _ in range(10)))
    assert sum(c is not None for c in claims) == 1
    async with pool.acquire() as conn:
        [at] = [c for c in claims if c is not None]
        assert isinstance(at, dt.datetime)
        await idempotency_store.finish(conn, "key:1", "k", at, 201, "application/json", b"{}")
        row = await idempotency_store.find(conn, "key:1", "k", 300)
        assert row is not None and (row["status"], row["body"], row["stale"]) == (201, b"{}", False)
        # A claim that is not ours (another time) changes nothing.
        await idempotency_store.release(conn, "key:1", "k", at - dt.timedelta(seconds=1))
        assert await idempotency_store.find(conn, "key:1", "k", 300) is not None
