"""The SQL of billing: settings, numbers, the ledger's rows, what is open, and bulk writes.

Writes go through :mod:`admin.billing.ledger` (one customer) and :mod:`admin.billing.run` (many);
both hold the customer's ledger lock (:func:`lock_customers`) while they read what is open and
write what follows from it, so two writers of one customer's ledger take turns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import numbering, taxes

DOCUMENT_COLUMNS = ("id", "kind", "customer_id", "partner_id", "number", "issued_on", "due_on", "period_start",
                    "period_end", "currency", "subtotal", "tax_total", "total", "origin", "related_id", "run_id",
                    "note", "idempotency_key", "created_by")
LINE_COLUMNS = ("document_id", "position", "description", "period_start", "period_end", "quantity", "unit",
                "unit_price", "net", "tax", "gross", "taxes", "service_id", "transaction_id")
TRANSACTION_COLUMNS = ("id", "customer_id", "direction", "kind", "amount", "currency", "posted_on", "description",
                       "service_id", "period_start", "period_end", "document_id", "reverses_id", "idempotency_key",
                       "created_by")
ALLOCATION_COLUMNS = ("customer_id", "credit_id", "target_transaction_id", "target_document_id", "amount",
                      "releases_id", "created_by")
PATTERNS = {"invoice": "invoice_pattern", "proforma": "proforma_pattern", "credit_note": "credit_note_pattern",
            "receipt": "receipt_pattern"}


async def settings(conn: Connection) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM billing_settings")
    assert row is not None  # schema.sql inserts the one row
    return row


async def lock_customers(conn: Connection, customer_ids: Sequence[int]) -> None:
    """Take the ledger locks of these customers (their customer_billing rows) until the transaction
    ends, in id order so that two writers never deadlock."""
    await conn.execute("SELECT 1 FROM customer_billing WHERE customer_id = ANY($1::bigint[]) "
                       "ORDER BY customer_id FOR UPDATE", list(customer_ids))


async def take_numbers(conn: Connection, kind: str, pattern: str, on: dt.date, partner_id: int,
                       count: int) -> list[str]:
    """``count`` consecutive document numbers of ``kind``, gap-free: the counter's row stays locked
    until the transaction ends, and a rollback gives the numbers back."""
    key = f"{kind}:{numbering.counter_key(pattern, on, partner_id)}"
    first = await conn.fetchval(
        "INSERT INTO number_counters (key, last_value) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET last_value = number_counters.last_value + $2 "
        "RETURNING last_value - $2 + 1", key, count)
    return [numbering.format_number(pattern, on, partner_id, first + i) for i in range(count)]


async def reserve_ids(conn: Connection, table: str, count: int) -> list[int]:
    """``count`` ids of ``table``'s identity, for rows written by COPY that other rows point to."""
    assert table in ("documents", "transactions")
    rows = await conn.fetch(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id "
                            "FROM generate_series(1, $1)", count)
    return [r["id"] for r in rows]


async def copy(conn: Connection, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]) -> None:
    """COPY ``records`` in (binary: tables without json columns)."""
    rows = list(records)
    if rows:
        await conn.copy_records_to_table(table, columns=list(columns), records=rows)


LINE_TYPES = ("bigint", "smallint", "text", "date", "date", "numeric", "text", "numeric", "numeric", "numeric",
              "numeric", "text", "bigint", "bigint")


async def insert_lines(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """document_lines in one statement (``taxes`` as JSON text): COPY has no binary jsonb here, as
    the pools decode json as text (daemons/db.py)."""
    await _insert_unnest(conn, "document_lines", LINE_COLUMNS, LINE_TYPES, rows, {"taxes"})


async def insert_run_items(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    await _insert_unnest(conn, "billing_run_items", ("run_id", "customer_id", "currency", "total", "lines"),
                         ("bigint", "bigint", "text", "numeric", "text"), rows, {"lines"})


async def _insert_unnest(conn: Connection, table: str, columns: Sequence[str], types: Sequence[str],
                         rows: Sequence[Sequence[Any]], json_columns: set[str]) -> None:
    if not rows:
        return
    arrays = [list(column) for column in zip(*rows, strict=True)]
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    names = ", ".join(columns)
    select = ", ".join(f"{c}::jsonb" if c in json_columns else c for c in columns)
    await conn.execute(f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({params}) AS u({names})", *arrays)


async def customer(conn: Connection, customer_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT c.id, c.partner_id, c.status, c.name, c.number, b.* FROM customers c "
        "JOIN customer_billing b ON b.customer_id = c.id WHERE c.id = $1", customer_id)


async def tax_groups(conn: Connection) -> list[asyncpg.Record]:
    """Every tax group with its rates in order: id, name, names[], percents[]."""
    return await conn.fetch(
        "SELECT g.id, g.name, "
        "coalesce(array_agg(r.name ORDER BY r.id) FILTER (WHERE r.id IS NOT NULL), '{}') AS names, "
        "coalesce(array_agg(r.percent ORDER BY r.id) FILTER (WHERE r.id IS NOT NULL), '{}') AS percents "
        "FROM tax_groups g LEFT JOIN tax_group_rates gr ON gr.group_id = g.id "
        "LEFT JOIN tax_rates r ON r.id = gr.rate_id "
        "GROUP BY g.id ORDER BY g.id")


def tax_groups_of(rows: Iterable[asyncpg.Record]) -> dict[int, taxes.TaxGroup]:
    """tax_groups()'s rows as the engine's groups, by id."""
    return {r["id"]: taxes.TaxGroup(r["name"], tuple(taxes.TaxRate(n, Decimal(p))
                                                   for n, p in zip(r["names"], r["percents"], strict=True)))
            for r in rows}


async def open_credits(conn: Connection, customer_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Credit transactions with something left to allocate, per customer."""
    return await conn.fetch(
        "SELECT t.id, t.customer_id, t.kind, t.posted_on, t.amount - coalesce(sum(a.amount), 0) AS rest, "
        "t.service_id, t.period_start, t.period_end, t.document_id, d.related_id "
        "FROM transactions t LEFT JOIN allocations a ON a.credit_id = t.id "
        "LEFT JOIN documents d ON d.id = t.document_id "
        "WHERE t.customer_id = ANY($1::bigint[]) AND t.direction = 'credit' AND t.kind <> 'reversal' "
        "AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id) "
        "GROUP BY t.id, d.related_id HAVING t.amount - coalesce(sum(a.amount), 0) > 0 ORDER BY t.posted_on, t.id",
        list(customer_ids))


async def open_debts(conn: Connection, customer_ids: Sequence[int]) -> list[asyncpg.Record]:
    """What is owed, per customer: open invoices (not void; an invoice whose lines are all one
    service's is that service's) and debit transactions on no invoice (not reversed), each with
    what is still open on it."""
    return await conn.fetch(
        "SELECT 'invoice' AS kind, d.id, d.customer_id, d.issued_on AS on, d.total - coalesce(p.paid, 0) AS rest, "
        "s.service_id, d.period_start, d.period_end FROM documents d "
        "LEFT JOIN LATERAL (SELECT sum(amount) AS paid FROM allocations WHERE target_document_id = d.id) p ON true "
        # an invoice of one service's charges is that service's debt (a payment may name it)
        "LEFT JOIN LATERAL (SELECT CASE WHEN count(DISTINCT l.service_id) = 1 AND count(*) = count(l.service_id) "
        "THEN min(l.service_id) END AS service_id FROM document_lines l WHERE l.document_id = d.id) s ON true "
        "WHERE d.customer_id = ANY($1::bigint[]) AND d.kind = 'invoice' "
        "AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id) "
        "AND d.total - coalesce(p.paid, 0) > 0 "
        "UNION ALL "
        "SELECT 'ledger_entry', t.id, t.customer_id, t.posted_on, t.amount - coalesce(p.paid, 0), t.service_id, "
        "t.period_start, t.period_end FROM transactions t "
        "LEFT JOIN LATERAL (SELECT sum(amount) AS paid FROM allocations WHERE target_transaction_id = t.id) p ON true "
        "WHERE t.customer_id = ANY($1::bigint[]) AND t.direction = 'debit' AND t.document_id IS NULL "
        "AND t.kind <> 'reversal' "
        "AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id) "
        "AND t.amount - coalesce(p.paid, 0) > 0 "
        "ORDER BY 4, 2", list(customer_ids))


async def balance(conn: Connection, customer_id: int) -> Decimal:
    value = await conn.fetchval(
        "SELECT coalesce(sum(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0) "
        "FROM transactions WHERE customer_id = $1", customer_id)
    return Decimal(value)


async def ledger(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """A customer's transactions in posting order, with their document's number."""
    return await conn.fetch(
        "SELECT t.id, t.posted_on, t.direction, t.kind, t.amount, t.currency, t.description, t.period_start, "
        "t.period_end, t.reverses_id, d.number AS document_number, d.kind AS document_kind FROM transactions t "
        "LEFT JOIN documents d ON d.id = t.document_id WHERE t.customer_id = $1 ORDER BY t.posted_on, t.id",
        customer_id)


async def document(conn: Connection, document_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT d.*, s.status, s.paid, s.open FROM documents d JOIN billing_documents_state s ON s.id = d.id "
        "WHERE d.id = $1", document_id)


async def document_lines(conn: Connection, document_id: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM document_lines WHERE document_id = $1 ORDER BY position", document_id)


async def transaction_by_key(conn: Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM transactions WHERE idempotency_key = $1", key)


async def pending_items(conn: Connection, customer_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Items for the next invoice that no invoice took yet."""
    return await conn.fetch(
        "SELECT i.* FROM next_invoice_items i WHERE i.customer_id = ANY($1::bigint[]) "
        "AND NOT EXISTS (SELECT 1 FROM document_line_items l WHERE l.item_id = i.id) ORDER BY i.customer_id, i.id",
        list(customer_ids))


# -- ledger operations -------------------------------------------------------------------------

async def issued_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT idempotency_key FROM documents WHERE idempotency_key = ANY($1::text[])", keys)
    return {r["idempotency_key"] for r in rows}


async def posted_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT idempotency_key FROM transactions WHERE idempotency_key = ANY($1::text[])", keys)
    return {r["idempotency_key"] for r in rows}


async def taken_items(conn: Connection, item_ids: Sequence[int]) -> set[int]:
    rows = await conn.fetch("SELECT item_id FROM document_line_items WHERE item_id = ANY($1::bigint[])", item_ids)
    return {r["item_id"] for r in rows}


async def currencies(conn: Connection, customer_ids: Sequence[int]) -> dict[int, str]:
    rows = await conn.fetch("SELECT customer_id, currency FROM customer_billing WHERE customer_id = ANY($1::bigint[])",
                            customer_ids)
    return {r["customer_id"]: r["currency"] for r in rows}


async def tax_invoice_of(conn: Connection, proforma_id: int) -> int | None:
    value = await conn.fetchval("SELECT id FROM documents WHERE related_id = $1 AND kind = 'invoice'", proforma_id)
    return int(value) if value is not None else None


async def allocated_from(conn: Connection, document_id: int) -> Decimal:
    """What of a credit note's or receipt's credit was allocated (released parts netted)."""
    return Decimal(await conn.fetchval(
        "SELECT coalesce(sum(a.amount), 0) FROM allocations a JOIN transactions t ON t.id = a.credit_id "
        "WHERE t.document_id = $1", document_id))


async def unreversed_posts(conn: Connection, document_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT t.* FROM transactions t WHERE t.document_id = $1 "
        "AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id)", document_id)


async def live_allocations_to(conn: Connection, document_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.* FROM allocations a WHERE a.target_document_id = $1 AND a.amount > 0 "
        "AND NOT EXISTS (SELECT 1 FROM allocations r WHERE r.releases_id = a.id)", document_id)


async def live_allocations_from(conn: Connection, credit_ids: Sequence[int]) -> list[asyncpg.Record]:
    """What these credits pay now: their allocations not released."""
    return await conn.fetch(
        "SELECT a.* FROM allocations a WHERE a.credit_id = ANY($1::bigint[]) AND a.amount > 0 "
        "AND NOT EXISTS (SELECT 1 FROM allocations r WHERE r.releases_id = a.id)", list(credit_ids))


async def insert_void(conn: Connection, document_id: int, by: str, reason: str) -> None:
    await conn.execute("INSERT INTO document_voids (document_id, by, reason) VALUES ($1, $2, $3)",
                       document_id, by, reason)


async def credited(conn: Connection, invoice_id: int) -> Decimal:
    """What the credit notes of an invoice (not void) total."""
    return Decimal(await conn.fetchval(
        "SELECT coalesce(sum(d.total), 0) FROM documents d WHERE d.related_id = $1 AND d.kind = 'credit_note' "
        "AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)", invoice_id))


async def insert_next_item(conn: Connection, customer_id: int, service_id: int | None, description: str,
                           quantity: Decimal, unit_price: Decimal, price_includes_tax: bool, tax_group_id: int | None,
                           currency: str, by: str) -> int:
    return int(await conn.fetchval(
        "INSERT INTO next_invoice_items (customer_id, service_id, description, quantity, unit_price, "
        "price_includes_tax, tax_group_id, currency, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "RETURNING id", customer_id, service_id, description, quantity, unit_price, price_includes_tax,
        tax_group_id, currency, by))


# -- runs --------------------------------------------------------------------------------------

SERVICES_DUE = """
SELECT s.id AS service_id, s.customer_id, c.partner_id, t.name AS tariff, t.price, t.tax_group_id,
       t.price_includes_tax, s.login,
       greatest(coalesce(s.start_date, (s.created_at AT TIME ZONE 'UTC')::date), s.billing_since) AS start,
       s.end_date, b.billing_type, b.timing, b.billing_day, b.months_in_advance, b.period_days, b.due_days, b.currency,
       (SELECT max(x.period_end) FROM transactions x WHERE x.service_id = s.id AND x.kind = 'charge'
        AND x.period_start >= coalesce(s.billing_since, '-infinity')) AS billed_until,
       (SELECT array_agg(p.starts_on || ',' || p.ends_on) FROM service_pauses p WHERE p.service_id = s.id) AS pauses
FROM customers c
JOIN customer_billing b ON b.customer_id = c.id
JOIN services s ON s.customer_id = c.id
JOIN tariffs t ON t.id = s.tariff_id
WHERE c.id >= $1 AND c.id < $2 AND b.enabled AND c.status IN ('active', 'blocked')
  AND s.status IN ('active', 'blocked') AND b.billing_type = ANY($3::text[])
  AND ($4::bigint IS NULL OR c.partner_id = $4)
  AND greatest(coalesce(s.start_date, (s.created_at AT TIME ZONE 'UTC')::date), s.billing_since) <= $5
ORDER BY c.id, s.id
"""


async def services_due(conn: Connection, lo: int, hi: int, types: Sequence[str], partner_id: int | None,
                       on: dt.date) -> list[asyncpg.Record]:
    """Billable services of customers with ids in [lo, hi) of these billing types, with what they
    were billed until (their charges' end) and their pauses."""
    return await conn.fetch(SERVICES_DUE, lo, hi, list(types), partner_id, on)


async def items_due(conn: Connection, lo: int, hi: int, partner_id: int | None, on: dt.date) -> list[asyncpg.Record]:
    """Items for the next invoice of recurring customers in [lo, hi), added by ``on``, not taken."""
    return await conn.fetch(
        "SELECT i.*, c.partner_id, b.due_days FROM next_invoice_items i JOIN customers c ON c.id = i.customer_id "
        "JOIN customer_billing b ON b.customer_id = c.id WHERE i.customer_id >= $1 AND i.customer_id < $2 "
        "AND b.enabled AND b.billing_type = 'recurring' AND c.status IN ('active', 'blocked') "
        "AND ($3::bigint IS NULL OR c.partner_id = $3) AND i.created_at < ($4::date + 1) "
        "AND NOT EXISTS (SELECT 1 FROM document_line_items l WHERE l.item_id = i.id) ORDER BY i.customer_id, i.id",
        lo, hi, partner_id, on)


async def customer_id_range(conn: Connection) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT coalesce(min(id), 0) AS lo, coalesce(max(id), 0) + 1 AS hi FROM customers")
    assert row is not None
    return row["lo"], row["hi"]


async def open_run(conn: Connection, partner_id: int | None, on: dt.date,
                   statuses: Sequence[str]) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, status FROM billing_runs WHERE coalesce(partner_id, 0) = coalesce($1::bigint, 0) "
        "AND billing_date = $2 AND status = ANY($3::text[])", partner_id, on, list(statuses))


async def insert_run(conn: Connection, partner_id: int | None, on: dt.date, by: str,
                     confirm_after: dt.datetime | None) -> int:
    return int(await conn.fetchval(
        "INSERT INTO billing_runs (partner_id, billing_date, created_by, confirm_after) "
        "VALUES ($1, $2, $3, $4) RETURNING id", partner_id, on, by, confirm_after))


def _totals(totals: dict[str, Decimal]) -> dict[str, str]:
    return {currency: str(amount) for currency, amount in totals.items()}


async def finish_preview(conn: Connection, run_id: int, customers: int, totals: dict[str, Decimal]) -> None:
    await conn.execute("UPDATE billing_runs SET customers = $2, totals = $3 WHERE id = $1", run_id, customers,
                       _totals(totals))


async def run_status_for_update(conn: Connection, run_id: int) -> str | None:
    value = await conn.fetchval("SELECT status FROM billing_runs WHERE id = $1 FOR UPDATE", run_id)
    return str(value) if value is not None else None


async def cancel_run(conn: Connection, run_id: int, by: str) -> None:
    await conn.execute("DELETE FROM billing_run_items WHERE run_id = $1", run_id)
    await conn.execute("UPDATE billing_runs SET status = 'cancelled', finished_at = now(), finished_by = $2 "
                       "WHERE id = $1", run_id, by)


async def billing_run(conn: Connection, run_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM billing_runs WHERE id = $1", run_id)


async def lock_run(conn: Connection, run_id: int) -> bool:
    """The session lock that keeps a run issued by one process at a time."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock(hashtext('lastmile.billing_run'), $1::int)", run_id))


async def unlock_run(conn: Connection, run_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext('lastmile.billing_run'), $1::int)", run_id)


async def set_run_issuing(conn: Connection, run_id: int) -> None:
    await conn.execute("UPDATE billing_runs SET status = 'issuing' WHERE id = $1", run_id)


async def run_items_after(conn: Connection, run_id: int, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT i.*, c.partner_id, b.due_days FROM billing_run_items i "
        "JOIN customers c ON c.id = i.customer_id JOIN customer_billing b ON b.customer_id = i.customer_id "
        "WHERE i.run_id = $1 AND i.customer_id > $2 ORDER BY i.customer_id LIMIT $3", run_id, after, limit)


async def run_outcome(conn: Connection, run_id: int) -> tuple[int, int, dict[str, Decimal]]:
    """(customers, documents, totals per currency) of what a run issued."""
    rows = await conn.fetch("SELECT currency, count(*) AS documents, count(DISTINCT customer_id) AS customers, "
                            "sum(total) AS total FROM documents WHERE run_id = $1 GROUP BY currency", run_id)
    return (sum(r["customers"] for r in rows), sum(r["documents"] for r in rows),
            {r["currency"]: r["total"] for r in rows})


async def finish_run(conn: Connection, run_id: int, by: str, customers: int, documents: int,
                     totals: dict[str, Decimal]) -> None:
    await conn.execute(
        "UPDATE billing_runs SET status = 'issued', finished_at = now(), finished_by = $2, documents = $3, "
        "customers = $4, totals = $5 WHERE id = $1", run_id, by, documents, customers, _totals(totals))


async def post_new(conn: Connection, posts: Sequence[Sequence[Any]]) -> list[asyncpg.Record]:
    """Transactions (TRANSACTION_COLUMNS without id) whose idempotency key is not posted yet; the
    ones posted (customer_id, amount, currency)."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS new_posts ON COMMIT DELETE ROWS AS "
                       "SELECT * FROM transactions WITH NO DATA")
    columns = [c for c in TRANSACTION_COLUMNS if c != "id"]
    await copy(conn, "new_posts", columns, posts)
    names = ", ".join(columns)
    return await conn.fetch(f"INSERT INTO transactions ({names}) SELECT {names} FROM new_posts "
                            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING customer_id, amount, currency")


# -- dunning -----------------------------------------------------------------------------------

CANDIDATES = """
WITH owing AS (
    SELECT customer_id FROM documents d
    WHERE d.kind = 'invoice' {documents} AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)
      AND d.total > coalesce((SELECT sum(a.amount) FROM allocations a WHERE a.target_document_id = d.id), 0)
    UNION
    SELECT customer_id FROM customer_status_changes WHERE reason = 'dunning' {changes}
    UNION
    SELECT b.customer_id FROM customer_billing b WHERE b.billing_type <> 'recurring' {billing}
)
SELECT c.id, c.status, b.billing_type, b.due_days, b.block_after_due_days, b.deactivate_after_block_days,
       b.min_balance, b.enabled,
       coalesce((SELECT sum(CASE t.direction WHEN 'credit' THEN t.amount ELSE -t.amount END)
                 FROM transactions t WHERE t.customer_id = c.id), 0) AS balance,
       (SELECT s.reason FROM customer_status_changes s WHERE s.customer_id = c.id ORDER BY s.id DESC LIMIT 1) AS reason,
       (SELECT (s.at AT TIME ZONE 'UTC')::date FROM customer_status_changes s
        WHERE s.customer_id = c.id AND s.to_status = 'blocked' ORDER BY s.id DESC LIMIT 1) AS blocked_on
FROM customers c JOIN customer_billing b ON b.customer_id = c.id
WHERE c.id IN (SELECT customer_id FROM owing) AND c.status IN ('active', 'blocked', 'inactive')
"""
"""Who dunning looks at: customers owing on an invoice, those it blocked, the prepaid ones. For
given customers (after a payment) every part is narrowed to them, so a payment does not read
the whole ledger."""
EVERYONE = CANDIDATES.format(documents="", changes="", billing="")
THESE = CANDIDATES.format(documents="AND d.customer_id = ANY($1::bigint[])",
                          changes="AND customer_id = ANY($1::bigint[])",
                          billing="AND b.customer_id = ANY($1::bigint[])") + " AND c.id = ANY($1::bigint[])"

UNPAID = """
SELECT d.customer_id, d.issued_on, d.due_on FROM documents d
WHERE d.kind = 'invoice' AND d.customer_id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id)
  AND d.total > coalesce((SELECT sum(a.amount) FROM allocations a WHERE a.target_document_id = d.id), 0)
"""


async def holidays(conn: Connection) -> frozenset[dt.date]:
    return frozenset(r["day"] for r in await conn.fetch("SELECT day FROM billing_holidays"))


async def dunning_candidates(conn: Connection, customer_ids: Sequence[int] | None) -> list[asyncpg.Record]:
    if customer_ids is None:
        return await conn.fetch(EVERYONE)
    return await conn.fetch(THESE, list(customer_ids))


async def unpaid_invoices(conn: Connection, customer_ids: Sequence[int]) -> list[asyncpg.Record]:
    return await conn.fetch(UNPAID, list(customer_ids))


async def set_status_by_dunning(conn: Connection, customer_ids: Sequence[int], status: str) -> None:
    """Move customers to ``status`` as dunning (customer_status_changes records the reason); the
    caller's transaction scopes the reason."""
    await conn.execute("SET LOCAL lastmile.status_reason = 'dunning'")
    await conn.execute("UPDATE customers SET status = $2 WHERE id = ANY($1::bigint[])", list(customer_ids), status)


# -- demo --------------------------------------------------------------------------------------

async def demo_taxes(conn: Connection, name: str, percent: Decimal) -> None:
    """One tax rate and its group on every tariff without taxes (once)."""
    async with conn.transaction():
        rate = await conn.fetchval("INSERT INTO tax_rates (name, percent) VALUES ($1, $2) ON CONFLICT (name) "
                                   "DO UPDATE SET name = excluded.name RETURNING id", name, percent)
        group = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ($1) ON CONFLICT (name) "
                                    "DO UPDATE SET name = excluded.name RETURNING id", name)
        await conn.execute("INSERT INTO tax_group_rates VALUES ($1, $2) ON CONFLICT DO NOTHING", group, rate)
        await conn.execute("UPDATE tariffs SET tax_group_id = $1 WHERE tax_group_id IS NULL", group)


async def demo_start_dates(conn: Connection, start: dt.date) -> None:
    """Services without a start start on ``start``, and customers never billed are billed on its
    day of the month (the first: whole calendar months on the demo's invoices)."""
    await conn.execute("UPDATE services SET start_date = $1 WHERE start_date IS NULL", start)
    await conn.execute("UPDATE customer_billing b SET billing_day = $1 WHERE billing_day <> $1 "
                       "AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.customer_id = b.customer_id)", start.day)


async def demo_open_invoices(conn: Connection) -> list[tuple[int, Decimal]]:
    rows = await conn.fetch("SELECT d.customer_id, sum(s.open) AS open FROM documents d "
                            "JOIN billing_documents_state s USING (id) WHERE d.kind = 'invoice' AND s.open > 0 "
                            "GROUP BY d.customer_id ORDER BY d.customer_id")
    return [(r["customer_id"], Decimal(r["open"])) for r in rows]


# -- plan changes and pauses -------------------------------------------------------------------

async def service_billing(conn: Connection, service_id: int) -> asyncpg.Record | None:
    """A service with its tariff's price and taxes and its customer's billing settings."""
    return await conn.fetchrow(
        "SELECT s.id, s.customer_id, s.login, s.tariff_id, t.name AS tariff, t.price, t.tax_group_id, "
        "t.price_includes_tax, c.partner_id, b.billing_day, b.months_in_advance, b.currency, b.due_days, "
        "b.billing_type FROM services s JOIN tariffs t ON t.id = s.tariff_id JOIN customers c ON c.id = s.customer_id "
        "JOIN customer_billing b ON b.customer_id = c.id WHERE s.id = $1", service_id)


async def tariff(conn: Connection, tariff_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, name, price, tax_group_id, price_includes_tax FROM tariffs WHERE id = $1",
                               tariff_id)


async def charges_over(conn: Connection, service_id: int, start: dt.date, end: dt.date) -> list[asyncpg.Record]:
    """The service's charges (not reversed) whose periods overlap [start, end), with their invoice."""
    return await conn.fetch(
        "SELECT t.id, t.period_start, t.period_end, t.amount, t.document_id FROM transactions t "
        "WHERE t.service_id = $1 AND t.kind = 'charge' AND t.period_start < $3 AND t.period_end > $2 "
        "AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.reverses_id = t.id) ORDER BY t.period_start",
        service_id, start, end)


async def pauses_of(conn: Connection, service_id: int, but: int | None = None) -> list[asyncpg.Record]:
    """The service's pauses (but the one of id ``but``)."""
    return await conn.fetch("SELECT starts_on, ends_on FROM service_pauses WHERE service_id = $1 "
                            "AND id IS DISTINCT FROM $2", service_id, but)


async def end_pause(conn: Connection, pause_id: int, on: dt.date) -> None:
    """The pause ends before ``on``: shortened to end then, or removed when it had not started."""
    await conn.execute("DELETE FROM service_pauses WHERE id = $1 AND starts_on >= $2", pause_id, on)
    await conn.execute("UPDATE service_pauses SET ends_on = $2, resumed_at = now() WHERE id = $1", pause_id, on)


async def insert_pause(conn: Connection, service_id: int, starts_on: dt.date, ends_on: dt.date, reason: str,
                       by_admin: int | None) -> int:
    return int(await conn.fetchval(
        "INSERT INTO service_pauses (service_id, starts_on, ends_on, reason, created_by) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id", service_id, starts_on, ends_on, reason, by_admin))


async def set_tariff(conn: Connection, service_id: int, tariff_id: int) -> None:
    await conn.execute("UPDATE services SET tariff_id = $2 WHERE id = $1", service_id, tariff_id)


async def previews_due(conn: Connection, now: dt.datetime) -> list[int]:
    """Previews whose automatic confirmation time has come (and runs left issuing by a crash)."""
    rows = await conn.fetch("SELECT id FROM billing_runs WHERE (status = 'preview' AND confirm_after <= $1) "
                            "OR status = 'issuing' ORDER BY id", now)
    return [r["id"] for r in rows]


async def billing_restarts(conn: Connection, customer_id: int, on: dt.date, billing_type: str) -> list[int]:
    """The customer's billing type from ``on``: its services' billing starts over that day. Returns
    the services (active or blocked) concerned."""
    await conn.execute("UPDATE customer_billing SET billing_type = $2 WHERE customer_id = $1", customer_id,
                       billing_type)
    rows = await conn.fetch("UPDATE services SET billing_since = $2 WHERE customer_id = $1 "
                            "AND status IN ('active', 'blocked') RETURNING id", customer_id, on)
    return [r["id"] for r in rows]
