"""The SQL of SEPA direct debit (schema.sql section 9): the creditor's settings, mandates,
collection batches and their collections. Lists of customers' rows are scoped as every area's
(admin/queries.py CUSTOMER_SCOPE: ``$1`` the principal's partner, ``$2`` the creator it is
limited to); a batch is the creditor's, and a scoped principal sees only the batches that hold
its customers, counted over its customers alone.

The money moves in admin/payments/record.py (a collection settled is a payment, one taken back
a reversal); this module writes only mandates, batches and the collections' status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE, keyset

SETTINGS_COLUMNS = ("creditor_id", "creditor_name", "iban", "bic", "scheme", "lead_days")


# -- the creditor's settings ------------------------------------------------------------------------

async def settings(conn: Connection, *, lock: bool = False) -> asyncpg.Record:
    """The one row; ``lock``: until the transaction ends (making a batch holds it, so two are
    never made at once)."""
    row = await conn.fetchrow("SELECT * FROM sepa_settings WHERE id" + (" FOR UPDATE" if lock else ""))
    assert row is not None  # schema.sql inserts it
    return row


async def update_settings(conn: Connection, values: dict[str, Any]) -> asyncpg.Record:
    names = [k for k in values if k in SETTINGS_COLUMNS]
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=1))
    row = await conn.fetchrow(f"UPDATE sepa_settings SET {sets} WHERE id RETURNING *", *(values[n] for n in names))
    assert row is not None
    return row


# -- mandates ---------------------------------------------------------------------------------------

MANDATE_SORTS = {"id": "m.id", "signed_on": "m.signed_on", "reference": "m.reference"}
_MANDATE_COLUMNS = (
    "m.id, m.customer_id, c.number AS customer_number, c.name AS customer, c.partner_id, m.reference, m.iban, m.bic, "
    "m.holder, m.signed_on, m.revoked_at, CASE WHEN m.revoked_at IS NULL THEN 'active' ELSE 'revoked' END AS status, "
    "m.created_by, m.created_at, "
    "(SELECT count(*) FROM dd_collections x WHERE x.mandate_id = m.id) AS collections")


async def mandates(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                   direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of mandates (``f``: customer_id, status, q), one row more than ``limit``."""
    column = MANDATE_SORTS[sort]
    condition, order, params = keyset(column, direction, after, 7, "m.id")
    return await conn.fetch(
        f"SELECT {_MANDATE_COLUMNS}, {column} AS sort_value FROM sepa_mandates m "
        f"JOIN customers c ON c.id = m.customer_id WHERE {CUSTOMER_SCOPE} "
        "AND ($3::bigint IS NULL OR m.customer_id = $3) "
        "AND ($4::text IS NULL OR ($4 = 'active') = (m.revoked_at IS NULL)) "
        "AND ($5::text IS NULL OR m.reference ILIKE $5 OR m.iban LIKE $6 OR m.holder ILIKE $5 OR c.number ILIKE $5 "
        "OR c.name ILIKE $5) "
        f"AND {condition} {order} LIMIT {int(limit) + 1}",
        partner, creator, f.customer_id, f.status, _like(f.q), _iban_like(f.q), *params)


def _like(text: str | None) -> str | None:
    if not text:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _iban_like(text: str | None) -> str | None:
    return _like("".join(text.split()).upper()) if text else None


async def mandate(conn: Connection, partner: int | None, creator: int | None, mandate_id: int, *,
                  lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_MANDATE_COLUMNS} FROM sepa_mandates m JOIN customers c ON c.id = m.customer_id "
        f"WHERE m.id = $3 AND {CUSTOMER_SCOPE}" + (" FOR UPDATE OF m" if lock else ""), partner, creator, mandate_id)


async def find_customer(conn: Connection, partner: int | None, creator: int | None,
                        text: str) -> asyncpg.Record | None:
    """A customer the principal sees by its number (exactly) or, failing that, its id."""
    value = text.strip()
    by_id = int(value) if value.isdigit() and 0 < int(value) < 2**63 else None
    return await conn.fetchrow(
        "SELECT c.id, c.number, c.name, c.partner_id, c.status, b.currency FROM customers c "
        f"JOIN customer_billing b ON b.customer_id = c.id WHERE {CUSTOMER_SCOPE} AND (c.number = $3 OR c.id = $4) "
        "ORDER BY c.number = $3 DESC LIMIT 1", partner, creator, value, by_id)


async def active_mandate(conn: Connection, customer_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM sepa_mandates WHERE customer_id = $1 AND revoked_at IS NULL",
                               customer_id)


async def reference_taken(conn: Connection, reference: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM sepa_mandates WHERE reference = $1)", reference))


async def mandates_of(conn: Connection, customer_id: int) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM sepa_mandates WHERE customer_id = $1", customer_id))


async def insert_mandate(conn: Connection, customer_id: int, reference: str, iban: str, bic: str, holder: str,
                         signed_on: dt.date, by: str) -> int:
    mandate_id = await conn.fetchval(
        "INSERT INTO sepa_mandates (customer_id, reference, iban, bic, holder, signed_on, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", customer_id, reference, iban, bic, holder, signed_on, by)
    return int(mandate_id)


async def revoke_mandate(conn: Connection, mandate_id: int) -> bool:
    done = await conn.execute("UPDATE sepa_mandates SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                              mandate_id)
    return bool(done == "UPDATE 1")


# -- what a batch collects --------------------------------------------------------------------------

_DUE_FROM = (
    "FROM documents d JOIN billing_documents_state s ON s.id = d.id "
    "JOIN sepa_mandates m ON m.customer_id = d.customer_id AND m.revoked_at IS NULL AND m.signed_on <= $1 "
    "WHERE d.kind = 'invoice' AND s.status NOT IN ('void', 'paid') AND s.open > 0 AND d.currency = 'EUR' "
    "AND coalesce(d.due_on, d.issued_on) <= $2 "
    "AND NOT EXISTS (SELECT 1 FROM dd_collections x WHERE x.document_id = d.id AND x.status <> 'failed')")


async def due(conn: Connection, collection_date: dt.date, due_by: dt.date) -> list[asyncpg.Record]:
    """The unpaid invoices (in euro) due by ``due_by`` of customers with a mandate active and
    signed by ``collection_date``, in no open collection yet, with their open amount and
    whether the mandate was collected before (a collection pending or paid, or one the bank
    settled and then returned): by customer, then invoice."""
    return await conn.fetch(
        "SELECT d.id AS document_id, d.number AS document_number, d.customer_id, s.open AS amount, "
        "m.id AS mandate_id, m.reference, m.iban, m.bic, m.holder, m.signed_on, "
        "EXISTS (SELECT 1 FROM dd_collections y WHERE y.mandate_id = m.id "
        "AND (y.status <> 'failed' OR y.settled_at IS NOT NULL)) AS collected_before "
        f"{_DUE_FROM} ORDER BY d.customer_id, d.id", collection_date, due_by)


async def due_summary(conn: Connection, collection_date: dt.date, due_by: dt.date) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT count(*) AS count, coalesce(sum(s.open), 0) AS total {_DUE_FROM}",
                              collection_date, due_by)
    assert row is not None
    return row


async def new_batch_id(conn: Connection) -> int:
    """A batch's id taken before its file is made (the file names it)."""
    return int(await conn.fetchval("SELECT nextval(pg_get_serial_sequence('dd_batches', 'id'))"))


async def insert_batch(conn: Connection, batch_id: int, message_id: str, collection_date: dt.date, currency: str,
                       count: int, total: Decimal, xml: str, by: str) -> None:
    await conn.execute(
        "INSERT INTO dd_batches (id, message_id, collection_date, currency, count, total, xml, created_by) "
        "OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        batch_id, message_id, collection_date, currency, count, total, xml, by)


async def insert_collections(conn: Connection, batch_id: int, rows: Sequence[tuple[int, int, int, Decimal, str, str]]
                             ) -> None:
    """``rows``: (mandate_id, customer_id, document_id, amount, sequence, end_to_end_id)."""
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO dd_collections (batch_id, mandate_id, customer_id, document_id, amount, sequence, end_to_end_id) "
        "SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::numeric[], $6::text[], $7::text[])",
        batch_id, *(list(c) for c in columns))


# -- batches ----------------------------------------------------------------------------------------

_BATCH_COUNTS = (
    "count(x.id) AS count, coalesce(sum(x.amount), 0) AS total, "
    "count(x.id) FILTER (WHERE x.status = 'pending') AS pending, "
    "count(x.id) FILTER (WHERE x.status = 'paid') AS paid, "
    "count(x.id) FILTER (WHERE x.status = 'failed') AS failed, "
    "coalesce(sum(x.amount) FILTER (WHERE x.status = 'paid'), 0) AS paid_total")
_BATCH_OF_SCOPE = (
    "FROM dd_batches b JOIN dd_collections x ON x.batch_id = b.id JOIN customers c ON c.id = x.customer_id "
    f"WHERE {CUSTOMER_SCOPE}")
_BATCH_COLUMNS = "b.id, b.message_id, b.collection_date, b.currency, b.created_by, b.created_at"


async def batches(conn: Connection, partner: int | None, creator: int | None, *, after: Sequence[Any] | None,
                  limit: int) -> list[asyncpg.Record]:
    """A page of batches, newest first, counted over the principal's customers (one row more than ``limit``)."""
    condition, order, params = keyset("b.id", "desc", after, 3, "b.id")
    return await conn.fetch(
        f"SELECT {_BATCH_COLUMNS}, {_BATCH_COUNTS}, b.id AS sort_value {_BATCH_OF_SCOPE} AND {condition} "
        f"GROUP BY b.id {order} LIMIT {int(limit) + 1}", partner, creator, *params)


async def batch(conn: Connection, partner: int | None, creator: int | None, batch_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_BATCH_COLUMNS}, {_BATCH_COUNTS} {_BATCH_OF_SCOPE} AND b.id = $3 GROUP BY b.id",
        partner, creator, batch_id)


async def batch_xml(conn: Connection, batch_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT message_id, collection_date, xml FROM dd_batches WHERE id = $1", batch_id)


# -- collections ------------------------------------------------------------------------------------

COLLECTION_SORTS = {"id": "x.id", "amount": "x.amount"}
_COLLECTION_COLUMNS = (
    "x.id, x.batch_id, b.message_id, b.collection_date, x.customer_id, c.number AS customer_number, "
    "c.name AS customer, c.partner_id, x.document_id, d.number AS document_number, x.mandate_id, "
    "m.reference AS mandate_reference, m.holder, m.iban, x.amount, x.sequence, x.end_to_end_id, x.status, x.reason, "
    "x.settled_at, p.id AS payment_id, r.created_at AS reversed_at")
_COLLECTION_FROM = (
    "FROM dd_collections x JOIN dd_batches b ON b.id = x.batch_id JOIN customers c ON c.id = x.customer_id "
    "JOIN documents d ON d.id = x.document_id JOIN sepa_mandates m ON m.id = x.mandate_id "
    "LEFT JOIN payments p ON p.collection_id = x.id LEFT JOIN payment_reversals r ON r.payment_id = p.id")


async def collections(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                      direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of collections (``f``: batch_id, customer_id, mandate_id, status), one row more than ``limit``."""
    column = COLLECTION_SORTS[sort]
    condition, order, params = keyset(column, direction, after, 7, "x.id")
    return await conn.fetch(
        f"SELECT {_COLLECTION_COLUMNS}, {column} AS sort_value {_COLLECTION_FROM} WHERE {CUSTOMER_SCOPE} "
        "AND ($3::bigint IS NULL OR x.batch_id = $3) AND ($4::bigint IS NULL OR x.customer_id = $4) "
        "AND ($5::bigint IS NULL OR x.mandate_id = $5) AND ($6::text IS NULL OR x.status = $6) "
        f"AND {condition} {order} LIMIT {int(limit) + 1}",
        partner, creator, f.batch_id, f.customer_id, f.mandate_id, f.status, *params)


async def due_collections(conn: Connection, today: dt.date, batch_id: int | None = None) -> list[int]:
    """The pending collections whose date has come (of one batch, or of all), in id order."""
    rows = await conn.fetch(
        "SELECT x.id FROM dd_collections x JOIN dd_batches b ON b.id = x.batch_id WHERE x.status = 'pending' "
        "AND b.collection_date <= $1 AND ($2::bigint IS NULL OR b.id = $2) ORDER BY x.id", today, batch_id)
    return [r["id"] for r in rows]


async def count_due(conn: Connection, today: dt.date) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM dd_collections x JOIN dd_batches b ON b.id = x.batch_id "
        "WHERE x.status = 'pending' AND b.collection_date <= $1", today))


_FOR_UPDATE = (
    "SELECT x.*, b.message_id, b.collection_date, c.partner_id, d.number AS document_number, m.holder, "
    "m.reference AS mandate_reference, p.id AS payment_id, r.created_at AS reversed_at "
    "FROM dd_collections x JOIN dd_batches b ON b.id = x.batch_id JOIN customers c ON c.id = x.customer_id "
    "JOIN documents d ON d.id = x.document_id JOIN sepa_mandates m ON m.id = x.mandate_id "
    "LEFT JOIN payments p ON p.collection_id = x.id LEFT JOIN payment_reversals r ON r.payment_id = p.id ")


async def collection_for_update(conn: Connection, collection_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(_FOR_UPDATE + "WHERE x.id = $1 FOR UPDATE OF x", collection_id)


async def collections_named(conn: Connection, end_to_end_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The collections of these end-to-end ids, locked, in id order."""
    return await conn.fetch(_FOR_UPDATE + "WHERE x.end_to_end_id = ANY($1::text[]) ORDER BY x.id FOR UPDATE OF x",
                            list(end_to_end_ids))


async def collections_of_message(conn: Connection, message_id: str) -> list[asyncpg.Record]:
    """Every collection of the batch of ``message_id``, locked, in id order."""
    return await conn.fetch(_FOR_UPDATE + "WHERE b.message_id = $1 ORDER BY x.id FOR UPDATE OF x", message_id)


async def batch_known(conn: Connection, message_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dd_batches WHERE message_id = $1)", message_id))


async def set_paid(conn: Connection, collection_id: int) -> None:
    await conn.execute("UPDATE dd_collections SET status = 'paid', settled_at = now() WHERE id = $1", collection_id)


async def set_failed(conn: Connection, collection_id: int, reason: str) -> None:
    await conn.execute("UPDATE dd_collections SET status = 'failed', reason = $2 WHERE id = $1", collection_id, reason)
