"""The SQL of online payments (online.py): the gateways' settings, their customers, saved cards,
payment attempts (payment_intents) and the events the gateways sent (gateway_events)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE


async def gateway(conn: Connection, name: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM payment_gateways WHERE name = $1" + (" FOR UPDATE" if lock else ""),
                               name)


async def gateways(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM payment_gateways ORDER BY name <> 'stripe', name")  # Stripe first


async def update_gateway(conn: Connection, name: str, values: Mapping[str, Any]) -> asyncpg.Record:
    """Set the columns of ``values`` (enabled, settings, secret_key, webhook_secret, updated_by)."""
    columns = list(values)
    assignments = ", ".join(f"{c} = ${i}" + ("::jsonb" if c == "settings" else "") for i, c in enumerate(columns, 2))
    args = [dict(values[c]) if c == "settings" else values[c] for c in columns]  # jsonb: the pool's codec
    row = await conn.fetchrow(f"UPDATE payment_gateways SET {assignments} WHERE name = $1 RETURNING *", name, *args)
    assert row is not None  # both gateways are rows of schema.sql
    return row


async def customer(conn: Connection, customer_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT c.id, c.partner_id, c.number, c.name, coalesce(c.billing_email, c.email, '') AS email, c.created_at, "
        "b.currency FROM customers c JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = $1", customer_id)


async def gateway_customer(conn: Connection, customer_id: int, gateway: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT external_id FROM gateway_customers WHERE customer_id = $1 AND gateway = $2", customer_id, gateway)
    return value


async def add_gateway_customer(conn: Connection, customer_id: int, gateway: str, external_id: str) -> str:
    """Keep the gateway's customer of ``customer_id``; the one kept before, when there was one."""
    await conn.execute("INSERT INTO gateway_customers (customer_id, gateway, external_id) VALUES ($1, $2, $3) "
                       "ON CONFLICT DO NOTHING", customer_id, gateway, external_id)
    kept = await gateway_customer(conn, customer_id, gateway)
    assert kept is not None
    return kept


async def customer_of_ref(conn: Connection, gateway: str, external_id: str) -> int | None:
    value: int | None = await conn.fetchval(
        "SELECT customer_id FROM gateway_customers WHERE gateway = $1 AND external_id = $2", gateway, external_id)
    return value


# -- saved cards ---------------------------------------------------------------------------------

METHOD_COLUMNS = "m.id, m.customer_id, m.gateway, m.token, m.brand, m.last4, m.exp_month, m.exp_year, m.autopay, " \
                 "m.created_at, m.removed_at"


async def methods(conn: Connection, customer_id: int, *, removed: bool = False) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {METHOD_COLUMNS} FROM payment_methods m WHERE m.customer_id = $1 "
        "AND ($2 OR m.removed_at IS NULL) ORDER BY m.removed_at IS NOT NULL, m.id", customer_id, removed)


async def method(conn: Connection, method_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {METHOD_COLUMNS} FROM payment_methods m WHERE m.id = $1"
                               + (" FOR UPDATE" if lock else ""), method_id)


async def add_method(conn: Connection, customer_id: int, gateway: str, token: str, brand: str, last4: str | None,
                     exp_month: int | None, exp_year: int | None) -> tuple[asyncpg.Record, bool]:
    """Keep a saved card (a token seen before is the card kept before); (its row, whether it is new)."""
    row = await conn.fetchrow(
        "INSERT INTO payment_methods (customer_id, gateway, token, brand, last4, exp_month, exp_year) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gateway, token) DO NOTHING "
        f"RETURNING {METHOD_COLUMNS.replace('m.', '')}",
        customer_id, gateway, token, brand, last4, exp_month, exp_year)
    if row is not None:
        return row, True
    kept = await conn.fetchrow(f"SELECT {METHOD_COLUMNS} FROM payment_methods m WHERE m.gateway = $1 AND m.token = $2",
                               gateway, token)
    assert kept is not None
    return kept, False


async def remove_method(conn: Connection, method_id: int) -> None:
    await conn.execute("UPDATE payment_methods SET removed_at = now(), autopay = false "
                       "WHERE id = $1 AND removed_at IS NULL", method_id)


async def set_autopay(conn: Connection, method_id: int, on: bool) -> None:
    await conn.execute("UPDATE payment_methods SET autopay = $2 WHERE id = $1", method_id, on)


async def expiring(conn: Connection, year: int, month: int, partner_id: int | None = None) -> list[asyncpg.Record]:
    """Saved cards (not removed) that expire in ``month`` of ``year``, with whom they belong to."""
    return await conn.fetch(
        f"SELECT {METHOD_COLUMNS}, c.number AS customer_number, c.name AS customer_name, "
        "coalesce(c.billing_email, c.email, '') AS email, c.partner_id "
        "FROM payment_methods m JOIN customers c ON c.id = m.customer_id "
        "WHERE m.removed_at IS NULL AND m.exp_year = $1 AND m.exp_month = $2 "
        "AND ($3::bigint IS NULL OR c.partner_id = $3) "
        "ORDER BY m.customer_id, m.id", year, month, partner_id)


# -- payment attempts ----------------------------------------------------------------------------

async def add_intent(conn: Connection, values: Mapping[str, Any]) -> tuple[asyncpg.Record, bool]:
    """A payment attempt under its idempotency key, kept before the gateway is asked; the attempt
    kept before under that key, when there is one: (the row, whether it is new)."""
    row = await conn.fetchrow(
        "INSERT INTO payment_intents (customer_id, gateway, purpose, document_id, payment_method_id, amount, currency, "
        "idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
        values["customer_id"], values["gateway"], values["purpose"], values["document_id"],
        values["payment_method_id"], values["amount"], values["currency"], values["idempotency_key"])
    if row is not None:
        return row, True
    kept = await conn.fetchrow("SELECT * FROM payment_intents WHERE idempotency_key = $1", values["idempotency_key"])
    assert kept is not None
    return kept, False


async def intent(conn: Connection, intent_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM payment_intents WHERE id = $1" + (" FOR UPDATE" if lock else ""),
                               intent_id)


async def intent_of_ref(conn: Connection, gateway: str, external_id: str, *,
                        lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM payment_intents WHERE gateway = $1 AND external_id = $2"
                               + (" FOR UPDATE" if lock else ""), gateway, external_id)


async def update_intent(conn: Connection, intent_id: int, *, status: str, external_id: str | None = None,
                        error: str | None = None) -> asyncpg.Record:
    row = await conn.fetchrow(
        "UPDATE payment_intents SET status = $2, external_id = coalesce(external_id, $3), error = coalesce($4, error) "
        "WHERE id = $1 RETURNING *", intent_id, status, external_id, error)
    assert row is not None
    return row


async def intents(conn: Connection, customer_id: int, limit: int = 20) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT i.*, d.number AS document_number, p.id AS payment_id FROM payment_intents i "
        "LEFT JOIN documents d ON d.id = i.document_id LEFT JOIN payments p ON p.intent_id = i.id "
        "WHERE i.customer_id = $1 ORDER BY i.id DESC LIMIT $2", customer_id, limit)


async def open_document(conn: Connection, customer_id: int, document_id: int) -> asyncpg.Record | None:
    """An invoice or proforma of the customer and what is left to pay of it."""
    return await conn.fetchrow(
        "SELECT d.id, d.kind, d.number, d.currency, s.status, s.open FROM documents d "
        "JOIN billing_documents_state s ON s.id = d.id WHERE d.id = $1 AND d.customer_id = $2",
        document_id, customer_id)


async def autopay_due(conn: Connection, today: dt.date, max_attempts: int) -> list[asyncpg.Record]:
    """Invoices due by ``today`` with something left to pay whose customer has a card with autopay
    on (its newest) on an enabled gateway; with the number of this attempt. Attempt n waits for the
    (n-1)th day after the due date, and for 20 hours after the attempt before it; one that
    succeeded or still runs stops the next."""
    return await conn.fetch(
        "SELECT d.id AS document_id, d.customer_id, d.number, s.open AS amount, d.currency, m.id AS method_id, "
        "m.gateway, m.token, coalesce(a.attempts, 0) + 1 AS attempt, NULL::text AS key "
        "FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "JOIN LATERAL (SELECT pm.* FROM payment_methods pm "
        "    JOIN payment_gateways g ON g.name = pm.gateway AND g.enabled "
        "    WHERE pm.customer_id = d.customer_id AND pm.autopay AND pm.removed_at IS NULL "
        "    ORDER BY pm.id DESC LIMIT 1) m ON true "
        "LEFT JOIN LATERAL (SELECT count(*) AS attempts, "
        "    bool_or(i.status NOT IN ('failed', 'canceled') OR i.created_at > now() - interval '20 hours') AS blocking "
        "    FROM payment_intents i WHERE i.document_id = d.id AND i.purpose = 'autopay') a ON true "
        "WHERE d.kind = 'invoice' AND d.due_on + coalesce(a.attempts, 0)::int <= $1 AND s.open > 0 "
        "AND s.status <> 'void' "
        "AND coalesce(a.attempts, 0) < $2 AND NOT coalesce(a.blocking, false) ORDER BY d.id", today, max_attempts)


async def autopay_unanswered(conn: Connection) -> list[asyncpg.Record]:
    """Autopay attempts the gateway never answered (asked again under their own key), in the
    shape of autopay_due's rows."""
    return await conn.fetch(
        "SELECT i.document_id, i.customer_id, d.number, i.amount, i.currency, i.payment_method_id AS method_id, "
        "i.gateway, NULL::text AS token, NULL::bigint AS attempt, i.idempotency_key AS key "
        "FROM payment_intents i JOIN documents d ON d.id = i.document_id "
        "WHERE i.purpose = 'autopay' AND i.status = 'created' AND i.external_id IS NULL ORDER BY i.id")


# -- payments ------------------------------------------------------------------------------------

async def payment_of_ref(conn: Connection, gateway: str, gateway_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT p.*, r.created_at AS reversed_at, r.refund_ref FROM payments p "
        "LEFT JOIN payment_reversals r ON r.payment_id = p.id WHERE p.gateway = $1 AND p.gateway_ref = $2",
        gateway, gateway_ref)


async def payment(conn: Connection, payment_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT p.*, d.number AS receipt_no, r.created_at AS reversed_at, r.refund_ref FROM payments p "
        "JOIN documents d ON d.id = p.receipt_id LEFT JOIN payment_reversals r ON r.payment_id = p.id "
        "WHERE p.id = $1", payment_id)


async def payment_of_intent(conn: Connection, intent_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT p.id, d.number AS receipt_no FROM payments p "
                               "JOIN documents d ON d.id = p.receipt_id WHERE p.intent_id = $1", intent_id)


async def reversed_of(payment_ids: list[int], conn: Connection) -> set[int]:
    """Which of ``payment_ids`` were taken back."""
    if not payment_ids:
        return set()
    rows = await conn.fetch("SELECT payment_id FROM payment_reversals WHERE payment_id = ANY($1::bigint[])",
                            payment_ids)
    return {r["payment_id"] for r in rows}


# -- gateway events ------------------------------------------------------------------------------

async def add_event(conn: Connection, gateway: str, event_id: str, kind: str, payload: Mapping[str, Any]) -> bool:
    """Keep an event as it came; False when it came before (nothing is written then)."""
    done = await conn.fetchval(
        "INSERT INTO gateway_events (gateway, event_id, type, payload) VALUES ($1, $2, $3, $4::jsonb) "
        "ON CONFLICT DO NOTHING RETURNING true", gateway, event_id, kind, dict(payload))
    return bool(done)


async def event_seen(conn: Connection, gateway: str, event_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM gateway_events WHERE gateway = $1 AND event_id = $2",
                                    gateway, event_id))


async def processed(conn: Connection, gateway: str, event_id: str, outcome: str) -> None:
    await conn.execute("UPDATE gateway_events SET processed_at = now(), outcome = $3 "
                       "WHERE gateway = $1 AND event_id = $2", gateway, event_id, outcome)


async def events(conn: Connection, gateway: str, limit: int = 20) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT event_id, type, received_at, processed_at, outcome FROM gateway_events "
                            "WHERE gateway = $1 ORDER BY received_at DESC, event_id LIMIT $2", gateway, limit)


async def event_counts(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT gateway, count(*) AS n FROM gateway_events GROUP BY gateway")
    return {r["gateway"]: int(r["n"]) for r in rows}


def as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


async def customer_by_number(conn: Connection, partner: int | None, creator: int | None,
                             number: str) -> int | None:
    """The id of the customer numbered ``number`` that the principal sees (admin/queries.py's scope)."""
    value: int | None = await conn.fetchval(f"SELECT c.id FROM customers c WHERE c.number = $3 AND {CUSTOMER_SCOPE}",
                                            partner, creator, number)
    return value
