"""The portal's SQL for direct-debit mandates (mandates.py), beyond
admin/payments/direct_debit_store.py (whose lookups are scoped by partner, for staff): the
creditor with the customer it would collect from, and the customer's own mandates. Every lookup
by id is scoped by the customer (``$1``): another customer's mandate is not found."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection
from admin.payments import direct_debit as dd
from admin.payments.direct_debit_service import complete

_COLUMNS = (
    "m.id, m.customer_id, c.partner_id, m.reference, m.iban, m.bic, m.holder, m.signed_on, m.revoked_at, "
    "CASE WHEN m.revoked_at IS NULL THEN 'active' ELSE 'revoked' END AS status, m.created_by")


async def creditor(conn: Connection, customer_id: int) -> asyncpg.Record:
    """The creditor's settings (``creditor_id``, ``creditor_name``, ``iban``, ``scheme``...) with
    the customer's ``id``, ``number``, ``name``, ``partner_id`` and ``currency``: what
    direct_debit_service.add_mandate takes as the customer, and what the page says."""
    row = await conn.fetchrow(
        "SELECT s.creditor_id, s.creditor_name, s.iban, s.bic, s.scheme, s.lead_days, c.id, c.number, c.name, "
        "c.partner_id, b.currency FROM sepa_settings s CROSS JOIN customers c "
        "JOIN customer_billing b ON b.customer_id = c.id WHERE s.id AND c.id = $1", customer_id)
    assert row is not None  # the customer of a session, and schema.sql's settings row
    return row


def offers(row: asyncpg.Record) -> bool:
    """Whether the customer may sign a mandate: the creditor is set up (a batch can be made) and
    the customer is billed in euro."""
    return complete(row) and row["currency"] == dd.CURRENCY


async def offered(conn: Connection, customer_id: int) -> bool:
    """The Finance tab "Direct debit" is shown (:func:`offers`)."""
    return offers(await creditor(conn, customer_id))


async def mandates(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's mandates, the active one first, then the newest, each with its last
    collection that did not fail (found through the customer's invoices and the open-collection
    index: dd_collections has no index by mandate)."""
    return await conn.fetch(
        f"SELECT {_COLUMNS}, last.collection_date AS last_date, last.amount AS last_amount, "
        "last.status AS last_status FROM sepa_mandates m JOIN customers c ON c.id = m.customer_id "
        "LEFT JOIN LATERAL (SELECT b.collection_date, x.amount, x.status FROM documents d "
        "JOIN dd_collections x ON x.document_id = d.id AND x.status <> 'failed' "
        "JOIN dd_batches b ON b.id = x.batch_id WHERE d.customer_id = m.customer_id AND x.mandate_id = m.id "
        "ORDER BY b.collection_date DESC, x.id DESC LIMIT 1) last ON true "
        "WHERE m.customer_id = $1 ORDER BY m.revoked_at IS NULL DESC, m.id DESC", customer_id)


async def mandate(conn: Connection, customer_id: int, mandate_id: int) -> asyncpg.Record | None:
    """One of the customer's mandates (what direct_debit_service.revoke_mandate takes)."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM sepa_mandates m JOIN customers c ON c.id = m.customer_id "
        "WHERE m.customer_id = $1 AND m.id = $2", customer_id, mandate_id)
