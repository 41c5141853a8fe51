"""Rows the notifications pages' tests (test_notifications_*.py, the browser's) start from: demo
customers of two partners, messages in every state written as the engine leaves them, an invoice."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import asyncpg

from admin.billing import ledger
from daemons import demo

NOW = dt.datetime.now(dt.UTC)
_causes = itertools.count(1)


async def two_partners(conn: asyncpg.Connection, customers: int = 4) -> tuple[int, int]:
    """The demo's partner (Demo ISP, ``customers`` customers) and "Other ISP", which the demo's
    last customer is moved to: (demo partner id, other partner id)."""
    await demo.load(conn, customers, seed=1)
    demo_id = await conn.fetchval("SELECT id FROM partners WHERE name = 'Demo ISP'")
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    await conn.execute("UPDATE customers SET partner_id = $1 WHERE id = (SELECT max(id) FROM customers)", other)
    return int(demo_id), int(other)


async def customer_of(conn: asyncpg.Connection, partner_id: int, nth: int = 0) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT id, number, name, email, partner_id FROM customers WHERE partner_id = $1 "
                              "ORDER BY id OFFSET $2 LIMIT 1", partner_id, nth)
    assert row is not None
    return row


async def add_message(conn: asyncpg.Connection, customer: asyncpg.Record | None, *, partner_id: int | None = None,
                      kind: str = "invoice", channel: str = "email", status: str = "sent", **columns: Any) -> int:
    """A message as the engine leaves it in ``status`` (sent: a recipient, a body, a provider id)."""
    values: dict[str, Any] = {
        "partner_id": partner_id if partner_id is not None else customer["partner_id"] if customer else None,
        "customer_id": customer["id"] if customer else None, "kind": kind, "channel": channel,
        "cause": f"test:{next(_causes)}", "status": status}
    if status in ("sent", "failed"):
        values.update(recipient=(customer["email"] if customer and channel == "email" else "+43 660 1234567")
                      if channel != "portal" else "", subject=f"{kind} for {customer['name'] if customer else 'all'}",
                      body=f"Hello {customer['name'] if customer else 'you'}.", attempts=1)
    if status == "sent":
        values.update(sent_at=NOW, provider_id=f"<{values['cause']}@lastmile>", provider_answer="250 2.0.0 Ok")
    if status == "failed":
        values.update(last_error="550 5.1.1 mailbox unavailable", provider_answer="550 5.1.1 <x>: no such user")
    values.update(columns)
    names = ", ".join(values)
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return int(await conn.fetchval(f"INSERT INTO messages ({names}) VALUES ({marks}) RETURNING id", *values.values()))


async def invoice(conn: asyncpg.Connection, customer_id: int, amount: str = "40.00") -> asyncpg.Record:
    """An invoice of the customer, issued today: (id, number)."""
    c = await conn.fetchrow("SELECT c.partner_id, b.currency FROM customers c JOIN customer_billing b "
                            "ON b.customer_id = c.id WHERE c.id = $1", customer_id)
    assert c is not None
    today = NOW.date()
    async with conn.transaction():
        [doc] = await ledger.issue(conn, [ledger.NewDocument(
            "invoice", customer_id, c["partner_id"], c["currency"], today, "manual",
            (ledger.NewLine("Fibre 100", Decimal(amount)),), due_on=today + dt.timedelta(days=14))])
    row = await conn.fetchrow("SELECT id, number FROM documents WHERE id = $1", doc.id)
    assert row is not None
    return row
