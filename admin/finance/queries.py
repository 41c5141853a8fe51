"""The SQL of the finance area: the ledger's rows, documents, billing runs, a customer's billing,
the reports and the settings. Every query of customers' rows is scoped (admin/queries.py
CUSTOMER_SCOPE: ``$1`` the principal's partner, ``$2`` the creator it is limited to); a billing
run is its partner's (a run of every partner is seen by unscoped principals only).

Writes of money go through admin/billing/ledger.py and run.py, never here: this module writes
only settings (customer_billing, billing_settings).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.queries import CUSTOMER_SCOPE, keyset


def _prefix(text: str) -> str:
    """``text`` as a LIKE prefix, its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def customer(conn: Connection, partner: int | None, creator: int | None, customer_id: int, *,
                   lock: bool = False) -> asyncpg.Record | None:
    """A customer the principal sees (with its billing's currency), or None."""
    return await conn.fetchrow(
        "SELECT c.id, c.number, c.name, c.partner_id, c.status, b.currency FROM customers c "
        f"JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = $3 AND {CUSTOMER_SCOPE}"
        + (" FOR UPDATE OF b" if lock else ""), partner, creator, customer_id)


async def partners(conn: Connection, partner: int | None) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name FROM partners WHERE $1::bigint IS NULL OR id = $1 ORDER BY name", partner)


# -- transactions -------------------------------------------------------------------------------

TRANSACTION_SORTS = {"posted_on": "t.posted_on", "amount": "t.amount", "id": "t.id"}

_TRANSACTIONS_WHERE = (
    f"{CUSTOMER_SCOPE} AND ($3::bigint IS NULL OR t.customer_id = $3) AND ($4::text IS NULL OR t.kind = $4) "
    "AND ($5::text IS NULL OR t.direction = $5) AND ($6::date IS NULL OR t.posted_on >= $6) "
    "AND ($7::date IS NULL OR t.posted_on <= $7) AND ($8::numeric IS NULL OR t.amount >= $8) "
    "AND ($9::numeric IS NULL OR t.amount <= $9)")


def _transaction_args(f: Any) -> list[Any]:
    return [f.customer_id, f.kind, f.direction, f.since, f.until,
            Decimal(f.min_amount) if f.min_amount is not None else None,
            Decimal(f.max_amount) if f.max_amount is not None else None]


async def transactions(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                       direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of the ledger (``f``: a TransactionFilter), fetched with one row more than ``limit``."""
    column = TRANSACTION_SORTS[sort]
    condition, order, params = keyset(column, direction, after, 10, "t.id")
    return await conn.fetch(
        "SELECT t.id, t.customer_id, c.number AS customer_number, c.name AS customer, t.direction, t.kind, t.amount, "
        "t.currency, t.posted_on, t.description, t.service_id, t.period_start, t.period_end, t.document_id, "
        "d.number AS document_number, d.kind AS document_kind, t.reverses_id, t.created_by, t.created_at, "
        f"{column} AS sort_value FROM transactions t JOIN customers c ON c.id = t.customer_id "
        f"LEFT JOIN documents d ON d.id = t.document_id WHERE {_TRANSACTIONS_WHERE} AND {condition} {order} "
        f"LIMIT {int(limit) + 1}", partner, creator, *_transaction_args(f), *params)


async def transaction_totals(conn: Connection, partner: int | None, creator: int | None,
                             f: Any) -> list[asyncpg.Record]:
    """What the whole filtered list adds up to, per currency (not only the page shown)."""
    return await conn.fetch(
        "SELECT t.currency, count(*) AS count, "
        "coalesce(sum(t.amount) FILTER (WHERE t.direction = 'debit'), 0) AS debit, "
        "coalesce(sum(t.amount) FILTER (WHERE t.direction = 'credit'), 0) AS credit "
        f"FROM transactions t JOIN customers c ON c.id = t.customer_id WHERE {_TRANSACTIONS_WHERE} "
        "GROUP BY t.currency ORDER BY t.currency", partner, creator, *_transaction_args(f))


# -- documents ----------------------------------------------------------------------------------

DOCUMENT_SORTS = {"issued_on": "d.issued_on", "number": "d.number", "total": "d.total",
                  "due_on": "coalesce(d.due_on, d.issued_on)"}
DOCUMENT_COLUMNS = (
    "d.id, d.kind, d.number, s.status, d.customer_id, c.number AS customer_number, c.name AS customer, d.partner_id, "
    "d.issued_on, d.due_on, d.period_start, d.period_end, d.currency, d.subtotal, d.tax_total, d.total, s.paid, "
    "s.open, d.origin, d.related_id, d.run_id, d.note, d.created_by, d.created_at")
_DOCUMENTS_FROM = ("FROM documents d JOIN billing_documents_state s ON s.id = d.id "
                   "JOIN customers c ON c.id = d.customer_id")


async def documents(conn: Connection, partner: int | None, creator: int | None, f: Any, *, sort: str,
                    direction: str, after: Sequence[Any] | None, limit: int) -> list[asyncpg.Record]:
    """A page of documents (``f``: a DocumentListFilter), one row more than ``limit``."""
    column = DOCUMENT_SORTS[sort]
    condition, order, params = keyset(column, direction, after, 10, "d.id")
    return await conn.fetch(
        f"SELECT {DOCUMENT_COLUMNS}, {column} AS sort_value {_DOCUMENTS_FROM} WHERE {CUSTOMER_SCOPE} "
        "AND ($3::text IS NULL OR d.kind = $3) AND ($4::text IS NULL OR s.status = $4) "
        "AND ($5::bigint IS NULL OR d.customer_id = $5) AND ($6::text IS NULL OR d.number LIKE $6) "
        "AND ($7::date IS NULL OR d.issued_on >= $7) AND ($8::date IS NULL OR d.issued_on <= $8) "
        "AND ($9::bigint IS NULL OR d.run_id = $9) "
        f"AND {condition} {order} LIMIT {int(limit) + 1}",
        partner, creator, f.kind, f.status, f.customer_id, _prefix(f.number) if f.number else None, f.since, f.until,
        f.run_id, *params)


async def document(conn: Connection, partner: int | None, creator: int | None,
                   document_id: int) -> asyncpg.Record | None:
    """A document the principal sees, with its void and the document it refers to."""
    return await conn.fetchrow(
        f"SELECT {DOCUMENT_COLUMNS}, v.at AS void_at, v.by AS void_by, v.reason AS void_reason "
        f"{_DOCUMENTS_FROM} LEFT JOIN document_voids v ON v.document_id = d.id "
        f"WHERE d.id = $3 AND {CUSTOMER_SCOPE}", partner, creator, document_id)


async def document_lines(conn: Connection, document_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT position, description, period_start, period_end, quantity, unit, unit_price, net, tax, gross, taxes, "
        "service_id FROM document_lines WHERE document_id = $1 ORDER BY position", document_id)


async def allocations(conn: Connection, document_id: int) -> list[asyncpg.Record]:
    """What paid this document, and what this document's credit paid (a receipt, a credit note)."""
    return await conn.fetch(
        "SELECT a.id, a.amount, a.credit_id, ct.document_id AS credit_document_id, "
        "cd.number AS credit_document_number, a.target_document_id, td.number AS target_document_number, "
        "a.target_transaction_id, concat_ws(' · ', coalesce(tt.description, ct.description), nullif(cd.note, '')) "
        "AS description, a.created_by, "
        "a.created_at FROM allocations a JOIN transactions ct ON ct.id = a.credit_id "
        "LEFT JOIN documents cd ON cd.id = ct.document_id LEFT JOIN documents td ON td.id = a.target_document_id "
        "LEFT JOIN transactions tt ON tt.id = a.target_transaction_id "
        "WHERE a.id IN (SELECT id FROM allocations WHERE target_document_id = $1 UNION "
        "SELECT x.id FROM allocations x JOIN transactions y ON y.id = x.credit_id WHERE y.document_id = $1) "
        "ORDER BY a.id", document_id)


async def related(conn: Connection, document_id: int, related_id: int | None) -> list[asyncpg.Record]:
    """The document ``related_id`` (this one's invoice or proforma) and those that name this one."""
    return await conn.fetch(
        "SELECT d.id, d.kind, d.number, s.status, d.issued_on, d.total FROM documents d "
        "JOIN billing_documents_state s ON s.id = d.id WHERE d.related_id = $1 OR d.id = $2 ORDER BY d.id",
        document_id, related_id)


async def document_file(conn: Connection, document_id: int) -> bytes | None:
    value = await conn.fetchval("SELECT pdf FROM document_files WHERE document_id = $1", document_id)
    return bytes(value) if value is not None else None


async def keep_document_file(conn: Connection, document_id: int, sha256: bytes, pdf: bytes) -> bytes:
    """Keep a document's first rendering (a second one racing it loses): the PDF kept."""
    await conn.execute("INSERT INTO document_files (document_id, sha256, pdf) VALUES ($1, $2, $3) "
                       "ON CONFLICT (document_id) DO NOTHING", document_id, sha256, pdf)
    kept = await document_file(conn, document_id)
    assert kept is not None
    return kept


async def branding(conn: Connection, partner_id: int) -> asyncpg.Record:
    """A partner's name and its branding (NULL columns while it has none)."""
    row = await conn.fetchrow(
        "SELECT p.name AS partner, b.company_name, b.address, b.tax_id, b.bank, b.email, b.phone, b.website, "
        "b.logo_svg, b.accent_color, b.footer FROM partners p LEFT JOIN partner_branding b ON b.partner_id = p.id "
        "WHERE p.id = $1", partner_id)
    assert row is not None  # documents_partner_fk
    return row


async def party(conn: Connection, customer_id: int) -> asyncpg.Record:
    """What a document says of its customer."""
    row = await conn.fetchrow("SELECT id, number, name, street, city, zip, country, email, billing_email "
                              "FROM customers WHERE id = $1", customer_id)
    assert row is not None
    return row


async def receipt_of(conn: Connection, transaction_id: int) -> asyncpg.Record | None:
    """The receipt a payment's credit was posted with, and the customer's balance now."""
    return await conn.fetchrow(
        "SELECT t.customer_id, t.amount, t.currency, t.document_id, d.number, "
        "(SELECT coalesce(sum(CASE x.direction WHEN 'credit' THEN x.amount ELSE -x.amount END), 0) "
        " FROM transactions x WHERE x.customer_id = t.customer_id) AS balance "
        "FROM transactions t LEFT JOIN documents d ON d.id = t.document_id WHERE t.id = $1", transaction_id)


async def document_number(conn: Connection, document_id: int) -> str:
    return str(await conn.fetchval("SELECT number FROM documents WHERE id = $1", document_id))


# -- billing runs -------------------------------------------------------------------------------

RUN_COLUMNS = ("r.id, r.partner_id, p.name AS partner, r.billing_date, r.status, r.created_at, r.created_by, "
               "r.confirm_after, r.finished_at, r.finished_by, r.customers, r.documents, r.totals")
# A partner's principal sees its partner's runs; a run of every partner (partner_id NULL) bills
# other partners' customers too, so only the unscoped see it.
RUN_SCOPE = "($1::bigint IS NULL OR r.partner_id = $1)"


async def runs(conn: Connection, partner: int | None, status: str | None, after: Sequence[Any] | None,
               limit: int) -> list[asyncpg.Record]:
    condition, order, params = keyset("r.id", "desc", after, 3, "r.id")
    return await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM billing_runs r LEFT JOIN partners p ON p.id = r.partner_id "
        f"WHERE {RUN_SCOPE} AND ($2::text IS NULL OR r.status = $2) AND {condition} {order} LIMIT {int(limit) + 1}",
        partner, status, *params)


async def run(conn: Connection, partner: int | None, run_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM billing_runs r LEFT JOIN partners p ON p.id = r.partner_id "
        f"WHERE r.id = $2 AND {RUN_SCOPE}", partner, run_id)


async def run_status(conn: Connection, run_id: int) -> str | None:
    """A run's status, its row locked until the transaction ends (a confirm and a cancel take turns)."""
    value = await conn.fetchval("SELECT status FROM billing_runs WHERE id = $1 FOR UPDATE", run_id)
    return str(value) if value is not None else None


async def run_items(conn: Connection, partner: int | None, creator: int | None, run_id: int, after: int,
                    limit: int) -> list[asyncpg.Record]:
    """A preview's customers after ``after`` (by id), one row more than ``limit``."""
    return await conn.fetch(
        "SELECT i.customer_id, c.number AS customer_number, c.name AS customer, i.currency, i.total, i.lines "
        f"FROM billing_run_items i JOIN customers c ON c.id = i.customer_id WHERE i.run_id = $3 AND {CUSTOMER_SCOPE} "
        f"AND i.customer_id > $4 ORDER BY i.customer_id LIMIT {int(limit) + 1}", partner, creator, run_id, after)


# -- a customer's billing -----------------------------------------------------------------------

CUSTOMER_BILLING = (
    "SELECT b.customer_id, b.enabled, b.billing_type, b.timing, b.billing_day, b.months_in_advance, b.period_days, "
    "b.due_days, b.block_after_due_days, b.deactivate_after_block_days, b.min_balance, b.currency, b.updated_at, "
    "coalesce((SELECT sum(CASE t.direction WHEN 'credit' THEN t.amount ELSE -t.amount END) FROM transactions t "
    "          WHERE t.customer_id = b.customer_id), 0) AS balance, "
    "coalesce(o.open, 0) AS open, coalesce(o.overdue, 0) AS overdue "
    "FROM customer_billing b LEFT JOIN LATERAL (SELECT sum(s.open) AS open, "
    "    sum(s.open) FILTER (WHERE s.status = 'overdue') AS overdue FROM documents d "
    "    JOIN billing_documents_state s ON s.id = d.id WHERE d.customer_id = b.customer_id AND d.kind = 'invoice' "
    "    AND s.status IN ('unpaid', 'partially_paid', 'overdue')) o ON true "
    "WHERE b.customer_id = $1")


async def customer_billing(conn: Connection, customer_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(CUSTOMER_BILLING, customer_id)
    assert row is not None  # every customer has its row (customers_billing_defaults)
    return row


async def update_customer_billing(conn: Connection, customer_id: int, values: dict[str, Any]) -> None:
    allowed = {"enabled", "billing_type", "timing", "billing_day", "months_in_advance", "period_days", "due_days",
               "block_after_due_days", "deactivate_after_block_days", "min_balance"}
    assert set(values) <= allowed, values
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=2))
    await conn.execute(f"UPDATE customer_billing SET {sets} WHERE customer_id = $1", customer_id, *values.values())


async def customer_documents(conn: Connection, customer_id: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {DOCUMENT_COLUMNS} {_DOCUMENTS_FROM} WHERE d.customer_id = $1 "
        "ORDER BY d.issued_on DESC, d.id DESC LIMIT $2", customer_id, limit)


async def pending_items(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """The customer's items for its next invoice that no invoice took yet."""
    return await conn.fetch(
        "SELECT i.id, i.customer_id, i.service_id, i.description, i.quantity, i.unit_price, i.price_includes_tax, "
        "i.tax_group_id, i.currency, i.created_by, i.created_at FROM next_invoice_items i WHERE i.customer_id = $1 "
        "AND NOT EXISTS (SELECT 1 FROM document_line_items l WHERE l.item_id = i.id) ORDER BY i.id", customer_id)


async def item(conn: Connection, item_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT id, customer_id, service_id, description, quantity, unit_price, price_includes_tax, tax_group_id, "
        "currency, created_by, created_at FROM next_invoice_items WHERE id = $1", item_id)
    assert row is not None
    return row


async def item_choices(conn: Connection, customer_id: int) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The customer's services and the tax groups, for the "add to next invoice" form (one round trip)."""
    rows = await conn.fetch(
        "SELECT 'service' AS kind, s.id, s.login AS name FROM services s WHERE s.customer_id = $1 "
        "AND s.status <> 'archived' UNION ALL SELECT 'tax', g.id, g.name FROM tax_groups g ORDER BY 1, 2",
        customer_id)
    return [r for r in rows if r["kind"] == "service"], [r for r in rows if r["kind"] == "tax"]


async def service_of(conn: Connection, customer_id: int, service_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM services WHERE id = $1 AND customer_id = $2)",
                                    service_id, customer_id))


async def tax_group_exists(conn: Connection, group_id: int) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tax_groups WHERE id = $1)", group_id))


# -- reports ------------------------------------------------------------------------------------
# One statement per chart, set-based: no query per day, customer or service.

ACTIVE_SERVICES = f"""
WITH scoped AS (
    SELECT coalesce(s.start_date, (s.created_at AT TIME ZONE 'UTC')::date) AS first_day,
           CASE WHEN s.end_date IS NOT NULL THEN s.end_date
                WHEN s.status IN ('active', 'blocked') THEN NULL
                ELSE (s.updated_at AT TIME ZONE 'UTC')::date END AS last_day,
           t.price, coalesce(t.currency, 'EUR') AS currency
    FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id
    WHERE {CUSTOMER_SCOPE}
), spans AS (
    SELECT * FROM scoped WHERE last_day IS NULL OR last_day >= first_day
), changes AS (
    SELECT greatest(first_day, $3::date) AS day, currency, 1 AS n, price FROM spans
    WHERE first_day <= $4 AND (last_day IS NULL OR last_day >= $3)
    UNION ALL
    SELECT last_day + 1, currency, -1, -price FROM spans
    WHERE first_day <= $4 AND last_day IS NOT NULL AND last_day >= $3 AND last_day < $4
), per_day AS (
    SELECT day, currency, sum(n) AS n, sum(price) AS price FROM changes GROUP BY day, currency
), currencies AS (SELECT DISTINCT currency FROM per_day)
SELECT d::date AS day, k.currency,
       coalesce(sum(p.n) OVER w, 0)::bigint AS services, coalesce(sum(p.price) OVER w, 0) AS prices
FROM generate_series($3::date, $4::date, interval '1 day') AS d CROSS JOIN currencies k
LEFT JOIN per_day p ON p.day = d::date AND p.currency = k.currency
WINDOW w AS (PARTITION BY k.currency ORDER BY d ROWS UNBOUNDED PRECEDING)
ORDER BY k.currency, d
"""


async def active_services(conn: Connection, partner: int | None, creator: int | None, since: dt.date,
                          until: dt.date) -> list[asyncpg.Record]:
    """Per day and currency: the services running that day (started, not ended) and the sum of
    their tariffs' prices. A service stopped without an end date ends on its last change."""
    return await conn.fetch(ACTIVE_SERVICES, partner, creator, since, until)


MRR = f"""
WITH months AS (
    SELECT m::date AS month, (m + interval '1 month')::date AS next
    FROM generate_series(date_trunc('month', $3::date), date_trunc('month', $4::date), interval '1 month') AS m
), charges AS (
    SELECT t.currency, t.amount, t.period_start, t.period_end FROM transactions t
    JOIN customers c ON c.id = t.customer_id
    WHERE {CUSTOMER_SCOPE} AND t.kind = 'charge' AND t.period_start IS NOT NULL
      AND t.period_end > date_trunc('month', $3::date) AND t.period_start < $4::date + 1
      AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id)
)
SELECT m.month, ch.currency,
       sum(ch.amount * (least(ch.period_end, m.next) - greatest(ch.period_start, m.month))
           / (ch.period_end - ch.period_start)::numeric) AS mrr
FROM months m JOIN charges ch ON ch.period_start < m.next AND ch.period_end > m.month
GROUP BY m.month, ch.currency ORDER BY ch.currency, m.month
"""


async def mrr(conn: Connection, partner: int | None, creator: int | None, since: dt.date,
              until: dt.date) -> list[asyncpg.Record]:
    """Per month and currency: the recurring charges that fall in the month, each by its share
    of days (a quarter billed in advance counts a third in each of its months); voided charges
    left out."""
    return await conn.fetch(MRR, partner, creator, since, until)


DEBT = f"""
SELECT d.currency,
       CASE WHEN d.due_on IS NULL OR d.due_on >= current_date THEN 0
            WHEN current_date - d.due_on <= 30 THEN 1
            WHEN current_date - d.due_on <= 60 THEN 2
            WHEN current_date - d.due_on <= 90 THEN 3
            ELSE 4 END AS bucket,
       count(*) AS invoices, sum(s.open) AS open
FROM documents d JOIN billing_documents_state s ON s.id = d.id JOIN customers c ON c.id = d.customer_id
WHERE {CUSTOMER_SCOPE} AND d.kind = 'invoice' AND s.status IN ('unpaid', 'partially_paid', 'overdue')
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def debt(conn: Connection, partner: int | None, creator: int | None) -> list[asyncpg.Record]:
    """What open invoices still ask today, by how long they are past due (0: not due yet, then
    1-30, 31-60, 61-90 and more than 90 days)."""
    return await conn.fetch(DEBT, partner, creator)


PAYMENTS = f"""
SELECT t.posted_on AS day, t.currency, count(*) AS payments, sum(t.amount) AS amount
FROM transactions t JOIN customers c ON c.id = t.customer_id
WHERE {CUSTOMER_SCOPE} AND t.kind = 'payment' AND t.direction = 'credit' AND t.posted_on BETWEEN $3 AND $4
  AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id)
GROUP BY t.posted_on, t.currency ORDER BY t.currency, t.posted_on
"""


async def payments(conn: Connection, partner: int | None, creator: int | None, since: dt.date,
                   until: dt.date) -> list[asyncpg.Record]:
    """Per day and currency: payments received (not voided), their count and sum."""
    return await conn.fetch(PAYMENTS, partner, creator, since, until)


# -- the settings -------------------------------------------------------------------------------

async def settings(conn: Connection) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM billing_settings")
    assert row is not None  # schema.sql inserts the one row
    return row


async def update_settings(conn: Connection, values: dict[str, Any]) -> asyncpg.Record:
    allowed = {"enabled", "currency", "billing_type", "timing", "billing_day", "due_days", "block_after_due_days",
               "deactivate_after_block_days", "min_balance", "upgrade_fee", "downgrade_fee", "invoice_pattern",
               "proforma_pattern", "credit_note_pattern", "receipt_pattern", "block_on_non_working_days",
               "holiday_country", "holiday_subdivision", "auto_issue", "confirmation_days"}
    assert set(values) <= allowed, values
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=1))
    row = await conn.fetchrow(f"UPDATE billing_settings SET {sets} RETURNING *", *values.values())
    assert row is not None
    return row


_APPLY = {
    "billing_type": "billing_type = s.billing_type", "timing": "timing = s.timing",
    "billing_day": "billing_day = coalesce(s.billing_day, least(extract(day FROM c.created_at AT TIME ZONE 'UTC')"
                   "::int, 28))",
    "due_days": "due_days = s.due_days", "block_after_due_days": "block_after_due_days = s.block_after_due_days",
    "deactivate_after_block_days": "deactivate_after_block_days = s.deactivate_after_block_days",
    "min_balance": "min_balance = s.min_balance", "enabled": "enabled = s.enabled",
}


async def apply_settings(conn: Connection, partner: int | None, creator: int | None,
                         columns: Sequence[str]) -> int:
    """Copy ``columns`` of billing_settings to the billing of every customer the principal sees
    (deleted ones aside); how many customers' rows changed."""
    sets = ", ".join(_APPLY[c] for c in columns)
    differ = " OR ".join(f"b.{c} IS DISTINCT FROM ({_APPLY[c].split(' = ', 1)[1]})" for c in columns)
    result = await conn.execute(
        f"UPDATE customer_billing b SET {sets} FROM billing_settings s, customers c "
        f"WHERE c.id = b.customer_id AND c.status <> 'deleted' AND {CUSTOMER_SCOPE} AND ({differ})",
        partner, creator)
    return int(result.split()[-1])



# -- statements, proforma invoices from the admin, accounting exports ---------------------------

async def document_by_key(conn: Connection, key: str) -> int | None:
    """The document issued with this idempotency key."""
    value = await conn.fetchval("SELECT id FROM documents WHERE idempotency_key = $1", key)
    return int(value) if value is not None else None


async def open_proforma_overlapping(conn: Connection, document_id: int) -> str | None:
    """The number of another open proforma invoice of the same customer (unpaid, not void)
    whose period overlaps this one's, or None."""
    value = await conn.fetchval(
        "SELECT o.number FROM documents d JOIN documents o ON o.customer_id = d.customer_id AND o.kind = 'proforma' "
        "AND o.id <> d.id JOIN billing_documents_state s ON s.id = o.id "
        "WHERE d.id = $1 AND s.status IN ('unpaid', 'partially_paid', 'overdue') "
        "AND o.period_start < d.period_end AND d.period_start < o.period_end ORDER BY o.id LIMIT 1", document_id)
    return str(value) if value is not None else None


async def document_numbers(conn: Connection, document_ids: Sequence[int]) -> dict[int, str]:
    """Documents' numbers by id (what a page of an export refers to)."""
    rows = await conn.fetch("SELECT id, number FROM documents WHERE id = ANY($1::bigint[])", list(document_ids))
    return {r["id"]: r["number"] for r in rows}
