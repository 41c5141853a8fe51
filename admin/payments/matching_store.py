"""The SQL of matching (matching.py): what a whole statement's lines need, each asked once for
all of them (the customers the references name, the documents whose numbers the texts hold,
the accounts seen before, the candidates' open invoices, the customers named like a payer no
other signal placed), never once per line."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import asyncpg

from admin.auth.store import Connection
from admin.payments import matching

_CUSTOMER = ("SELECT c.id, c.number, c.name, c.status, b.currency FROM customers c "
             "JOIN customer_billing b ON b.customer_id = c.id ")


def _customer(r: asyncpg.Record) -> matching.Customer:
    return matching.Customer(r["id"], r["number"], r["name"], r["currency"], r["status"])


async def customers(conn: Connection, ids: Iterable[int]) -> dict[int, matching.Customer]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.fetch(_CUSTOMER + "WHERE c.id = ANY($1::bigint[])", wanted)
    return {r["id"]: _customer(r) for r in rows}


async def documents(conn: Connection, numbers: Iterable[str]) -> dict[str, list[matching.Document]]:
    """Invoices and proformas by number, with what each leaves open (a proforma whose tax invoice
    was issued leaves nothing) and whether it is void."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT d.id, d.customer_id, d.number, d.kind, "
        "CASE WHEN d.kind = 'proforma' AND EXISTS (SELECT 1 FROM documents t WHERE t.related_id = d.id "
        "AND t.kind = 'invoice') THEN 0 ELSE d.total - coalesce((SELECT sum(a.amount) FROM allocations a "
        "WHERE a.target_document_id = d.id), 0) END AS open, "
        "EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id) AS void "
        "FROM documents d WHERE d.kind IN ('invoice', 'proforma') AND d.number = ANY($1::text[])", wanted)
    out: dict[str, list[matching.Document]] = {}
    for r in rows:
        out.setdefault(r["number"], []).append(
            matching.Document(r["id"], r["customer_id"], r["number"], r["kind"], Decimal(r["open"]), r["void"]))
    return out


async def accounts(conn: Connection, keys: Iterable[str]) -> dict[str, dict[int, int]]:
    """Account -> {customer: lines of it matched or paired to that customer}."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT payer_account, customer_id, count(*) AS times FROM bank_statement_lines "
        "WHERE payer_account = ANY($1::text[]) AND status IN ('matched', 'paired') AND payer_account <> '' "
        "AND customer_id IS NOT NULL GROUP BY payer_account, customer_id", wanted)
    out: dict[str, dict[int, int]] = {}
    for r in rows:
        out.setdefault(r["payer_account"], {})[r["customer_id"]] = r["times"]
    return out


async def open_invoices(conn: Connection, customer_ids: Iterable[int]) -> dict[int, list[matching.Document]]:
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT d.id, d.customer_id, d.number, d.total - coalesce(sum(a.amount), 0) AS open FROM documents d "
        "LEFT JOIN allocations a ON a.target_document_id = d.id "
        "WHERE d.customer_id = ANY($1::bigint[]) AND d.kind = 'invoice' "
        "AND NOT EXISTS (SELECT 1 FROM document_voids v WHERE v.document_id = d.id) "
        "GROUP BY d.id HAVING d.total - coalesce(sum(a.amount), 0) > 0 ORDER BY d.customer_id, d.issued_on, d.id",
        wanted)
    out: dict[int, list[matching.Document]] = {}
    for r in rows:
        out.setdefault(r["customer_id"], []).append(
            matching.Document(r["id"], r["customer_id"], r["number"], "invoice", Decimal(r["open"])))
    return out


async def names(conn: Connection) -> list[asyncpg.Record]:
    """(id, name) of every customer not deleted: a payer's name is compared with all of them,
    folded (matching.name_words) in Python, which folds as the bank's files need (accents,
    "ue" for "ü") where SQL's lower() depends on the database's locale."""
    return await conn.fetch("SELECT id, name FROM customers WHERE status <> 'deleted'")
