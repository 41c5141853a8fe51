"""The portal's SQL for paying online (pay.py), beyond admin/payments/online_store.py: the
gateway the portal pays through, and a customer's own card and payment attempt. Every lookup by
id is scoped by the customer (``$1``): another customer's card or attempt is not found."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection
from admin.payments.online_store import METHOD_COLUMNS

PORTAL_GATEWAY = "stripe"
"""The portal pays through Stripe (Stripe.js in the payer's browser); PayPal is the API's only."""


async def portal_gateway(conn: Connection) -> asyncpg.Record | None:
    """Stripe's row when the portal can pay through it: enabled, with a publishable key (what
    Stripe.js needs) and a secret key; None otherwise (no Pay buttons, the pages say so)."""
    row = await conn.fetchrow("SELECT * FROM payment_gateways WHERE name = $1", PORTAL_GATEWAY)
    if row is None or not row["enabled"] or not row["secret_key"]:
        return None
    if not str((row["settings"] or {}).get("publishable_key") or ""):
        return None
    return row


async def card(conn: Connection, customer_id: int, method_id: int) -> asyncpg.Record | None:
    """One of the customer's saved cards (not removed)."""
    return await conn.fetchrow(
        f"SELECT {METHOD_COLUMNS} FROM payment_methods m WHERE m.customer_id = $1 AND m.id = $2 "
        "AND m.removed_at IS NULL", customer_id, method_id)


async def cards(conn: Connection, customer_id: int, gateway: str) -> list[asyncpg.Record]:
    """The customer's saved cards with ``gateway`` (not removed), oldest first."""
    return await conn.fetch(
        f"SELECT {METHOD_COLUMNS} FROM payment_methods m WHERE m.customer_id = $1 AND m.gateway = $2 "
        "AND m.removed_at IS NULL ORDER BY m.id", customer_id, gateway)


async def attempt(conn: Connection, customer_id: int, intent_id: int) -> asyncpg.Record | None:
    """One of the customer's payment attempts, with its document's number and its receipt (once paid)."""
    return await conn.fetchrow(
        "SELECT i.*, d.number AS document_number, d.kind AS document_kind, p.id AS payment_id, "
        "r.number AS receipt_number FROM payment_intents i LEFT JOIN documents d ON d.id = i.document_id "
        "LEFT JOIN payments p ON p.intent_id = i.id LEFT JOIN documents r ON r.id = p.receipt_id "
        "WHERE i.customer_id = $1 AND i.id = $2", customer_id, intent_id)


async def customer_number(conn: Connection, customer_id: int) -> str:
    number: str = await conn.fetchval("SELECT number FROM customers WHERE id = $1", customer_id)
    return number


async def attempt_of_key(conn: Connection, customer_id: int, key: str) -> asyncpg.Record | None:
    """The customer's attempt made under ``key`` (a pay page's, asked for before)."""
    return await conn.fetchrow("SELECT id, purpose, document_id, status, external_id FROM payment_intents "
                               "WHERE customer_id = $1 AND idempotency_key = $2", customer_id, key)
