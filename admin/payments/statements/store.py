"""The SQL of bank statements: the banks' column mappings, the statements and their lines, the
review queue, and the lines' changes (matched at import, paired or ignored by a person)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection

MAPPING_COLUMNS = ("name", "delimiter", "encoding", "skip_lines", "has_header", "columns", "date_format",
                   "decimal_comma")
LINE_COLUMNS = ("statement_id", "line_hash", "position", "booked_on", "amount", "currency", "payer_name",
                "payer_account", "reference", "description", "bank_ref", "status", "customer_id", "document_id",
                "score", "explanation", "error")
LINE_TYPES = ("bigint", "text", "integer", "date", "numeric", "text", "text", "text", "text", "text", "text", "text",
              "bigint", "bigint", "smallint", "text", "text")
_LINE = ("SELECT l.*, s.file_name, c.number AS customer_number, c.name AS customer_name, "
         "c.partner_id AS customer_partner_id, d.number AS document_number, d.kind AS document_kind, "
         "p.id AS payment_id, r.number AS receipt_number "
         "FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id "
         "LEFT JOIN customers c ON c.id = l.customer_id LEFT JOIN documents d ON d.id = l.document_id "
         "LEFT JOIN payments p ON p.statement_line_id = l.id LEFT JOIN documents r ON r.id = p.receipt_id ")


# -- mappings -------------------------------------------------------------------------------------

async def mappings(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM bank_mappings ORDER BY name, id")


async def mapping(conn: Connection, mapping_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM bank_mappings WHERE id = $1", mapping_id)


async def insert_mapping(conn: Connection, values: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO bank_mappings (name, delimiter, encoding, skip_lines, has_header, columns, date_format, "
        "decimal_comma) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING *",
        *(_mapping_value(values, c) for c in MAPPING_COLUMNS))
    assert row is not None
    return row


async def update_mapping(conn: Connection, mapping_id: int, values: dict[str, Any]) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE bank_mappings SET name = $2, delimiter = $3, encoding = $4, skip_lines = $5, has_header = $6, "
        "columns = $7::jsonb, date_format = $8, decimal_comma = $9 WHERE id = $1 RETURNING *",
        mapping_id, *(_mapping_value(values, c) for c in MAPPING_COLUMNS))


def _mapping_value(values: dict[str, Any], column: str) -> Any:
    return values[column]  # columns: a dict, which the pool's jsonb codec writes


async def delete_mapping(conn: Connection, mapping_id: int) -> bool:
    """False when it is not there; asyncpg.ForeignKeyViolationError when a statement was read through it."""
    return await conn.fetchval("DELETE FROM bank_mappings WHERE id = $1 RETURNING true", mapping_id) is not None


async def mapping_uses(conn: Connection, mapping_ids: Sequence[int]) -> dict[int, int]:
    rows = await conn.fetch("SELECT mapping_id, count(*) AS n FROM bank_statements "
                            "WHERE mapping_id = ANY($1::bigint[]) GROUP BY mapping_id", list(mapping_ids))
    return {r["mapping_id"]: r["n"] for r in rows}


# -- statements -----------------------------------------------------------------------------------

async def statement_by_file(conn: Connection, sha256: str) -> int | None:
    value = await conn.fetchval("SELECT id FROM bank_statements WHERE file_sha256 = $1", sha256)
    return int(value) if value is not None else None


async def insert_statement(conn: Connection, file_name: str, fmt: str, mapping_id: int | None, sha256: str,
                           account: str, line_count: int, by: str) -> int:
    value: int = await conn.fetchval(
        "INSERT INTO bank_statements (file_name, format, mapping_id, file_sha256, account, line_count, imported_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", file_name, fmt, mapping_id, sha256, account, line_count,
        by)
    return value


async def set_duplicates(conn: Connection, statement_id: int, count: int) -> None:
    await conn.execute("UPDATE bank_statements SET duplicate_count = $2 WHERE id = $1", statement_id, count)


async def known_hashes(conn: Connection, hashes: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT line_hash FROM bank_statement_lines WHERE line_hash = ANY($1::text[])",
                            list(hashes))
    return {r["line_hash"] for r in rows}


async def insert_lines(conn: Connection, rows: Sequence[Sequence[Any]]) -> dict[int, int]:
    """Lines (LINE_COLUMNS; ``explanation`` as JSON text) in one statement, a hash known already
    left out (another import took it meanwhile): position -> the new line's id."""
    if not rows:
        return {}
    arrays = [list(column) for column in zip(*rows, strict=True)]
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(LINE_TYPES, start=1))
    names = ", ".join(LINE_COLUMNS)
    select = ", ".join(f"{c}::jsonb" if c == "explanation" else c for c in LINE_COLUMNS)
    found = await conn.fetch(
        f"INSERT INTO bank_statement_lines ({names}) SELECT {select} FROM unnest({params}) AS u({names}) "
        "ON CONFLICT (line_hash) DO NOTHING RETURNING id, position", *arrays)
    return {r["position"]: r["id"] for r in found}


async def set_errors(conn: Connection, errors: dict[int, str]) -> None:
    """Matched lines whose payment was refused: error, and why."""
    if errors:
        await conn.execute(
            "UPDATE bank_statement_lines l SET status = 'error', error = e.why FROM unnest($1::bigint[], $2::text[]) "
            "AS e(id, why) WHERE l.id = e.id", list(errors), list(errors.values()))


async def statements(conn: Connection, after: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, each with its lines waiting for a person (``waiting``)."""
    rows = await conn.fetch(
        "SELECT s.*, m.name AS mapping FROM bank_statements s LEFT JOIN bank_mappings m ON m.id = s.mapping_id "
        "WHERE ($1::bigint IS NULL OR s.id < $1) ORDER BY s.id DESC LIMIT $2", after, limit + 1)
    waiting = await conn.fetch(
        "SELECT statement_id, count(*) AS n FROM bank_statement_lines WHERE status IN ('new', 'error') "
        "AND statement_id = ANY($1::bigint[]) GROUP BY statement_id", [r["id"] for r in rows])
    counts = {r["statement_id"]: r["n"] for r in waiting}
    return [_with(r, waiting=counts.get(r["id"], 0)) for r in rows]


def _with(row: asyncpg.Record, **extra: Any) -> dict[str, Any]:
    return {**dict(row), **extra}


async def statement(conn: Connection, statement_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT s.*, m.name AS mapping FROM bank_statements s LEFT JOIN bank_mappings m ON m.id = s.mapping_id "
        "WHERE s.id = $1", statement_id)
    if row is None:
        return None
    counts = await conn.fetch("SELECT status, count(*) AS n, sum(amount) AS total FROM bank_statement_lines "
                              "WHERE statement_id = $1 GROUP BY status", statement_id)
    return _with(row, counts={r["status"]: r["n"] for r in counts}, totals={r["status"]: r["total"] for r in counts})


async def lines(conn: Connection, statement_id: int, status: str | None, after: int | None,
                limit: int) -> list[asyncpg.Record]:
    """A statement's lines in the file's order (by position)."""
    return await conn.fetch(
        _LINE + "WHERE l.statement_id = $1 AND ($2::text IS NULL OR l.status = $2) "
        "AND ($3::integer IS NULL OR l.position > $3) ORDER BY l.position LIMIT $4",
        statement_id, status, after, limit + 1)


async def review(conn: Connection, statuses: Sequence[str], after: int | None, limit: int) -> list[asyncpg.Record]:
    """Lines of every statement in ``statuses`` (new and error: the review queue), oldest first."""
    return await conn.fetch(
        _LINE + "WHERE l.status = ANY($1::text[]) AND ($2::bigint IS NULL OR l.id > $2) ORDER BY l.id LIMIT $3",
        list(statuses), after, limit + 1)


async def line(conn: Connection, line_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(_LINE + "WHERE l.id = $1" + (" FOR UPDATE OF l" if lock else ""), line_id)


async def pair(conn: Connection, line_id: int, customer_id: int, document_id: int | None, note: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE bank_statement_lines SET status = 'paired', customer_id = $2, document_id = $3, error = '', "
        "explanation = explanation || $4::jsonb WHERE id = $1", line_id, customer_id, document_id, [note])


async def ignore(conn: Connection, line_id: int, note: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE bank_statement_lines SET status = 'ignored', explanation = explanation || $2::jsonb WHERE id = $1",
        line_id, [note])


async def customers_by_document(conn: Connection, number: str) -> list[asyncpg.Record]:
    """Customers with a document of this number (any kind): (customer_id, number, name, status, match)."""
    return await conn.fetch(
        "SELECT c.id AS customer_id, c.number, c.name, c.status, d.kind || ' ' || d.number AS match, 100 AS score, "
        "d.id AS document_id "
        "FROM documents d JOIN customers c ON c.id = d.customer_id WHERE d.number = $1 ORDER BY c.id LIMIT 20",
        number)


async def documents_of(conn: Connection, customer_id: int) -> list[asyncpg.Record]:
    """A customer's invoices and proformas that leave something open, oldest first (what a pairing may name)."""
    return await conn.fetch(
        "SELECT s.id, d.number, d.kind, d.issued_on, s.open, s.status FROM billing_documents_state s "
        "JOIN documents d ON d.id = s.id WHERE s.customer_id = $1 AND s.kind IN ('invoice', 'proforma') "
        "AND s.status NOT IN ('paid', 'void') ORDER BY d.issued_on, d.id LIMIT 50", customer_id)


async def billing_currency(conn: Connection) -> str:
    value: str = await conn.fetchval("SELECT currency FROM billing_settings")
    return value
