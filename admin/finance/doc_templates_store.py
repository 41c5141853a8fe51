"""The SQL of operators' document templates (document_templates): one body per (partner, kind),
partner NULL for every partner's default. A document is rendered with its partner's template, else
the operator-wide one, else the file lastmile ships (admin/billing/render/templates/). Not
financial: a template is replaced and deleted in place; an issued document keeps the PDF it was
first rendered as (document_files)."""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

COLUMNS = "id, partner_id, kind, body, updated_by, updated_at"


async def effective(conn: Connection, partner_id: int | None, kind: str) -> str | None:
    """The body a document of ``partner_id`` and ``kind`` is rendered with: the partner's own, else
    the operator-wide one; None: the shipped file."""
    body: str | None = await conn.fetchval(
        "SELECT body FROM document_templates WHERE kind = $2 AND (partner_id = $1 OR partner_id IS NULL) "
        "ORDER BY partner_id NULLS LAST LIMIT 1", partner_id, kind)
    return body


async def templates(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The operator-wide rows and, for a partner, its own (every kind)."""
    return await conn.fetch(f"SELECT {COLUMNS} FROM document_templates WHERE partner_id IS NULL OR partner_id = $1 "
                            "ORDER BY kind, partner_id NULLS FIRST", partner_id)


async def save(conn: Connection, partner_id: int | None, kind: str, body: str, by: str) -> asyncpg.Record:
    """Insert or replace the (partner, kind) template."""
    if partner_id is None:
        sql = (f"INSERT INTO document_templates (partner_id, kind, body, updated_by) VALUES (NULL, $1, $2, $3) "
               f"ON CONFLICT (kind) WHERE partner_id IS NULL DO UPDATE SET body = EXCLUDED.body, "
               f"updated_by = EXCLUDED.updated_by RETURNING {COLUMNS}")
        row = await conn.fetchrow(sql, kind, body, by)
    else:
        sql = (f"INSERT INTO document_templates (partner_id, kind, body, updated_by) VALUES ($1, $2, $3, $4) "
               f"ON CONFLICT (partner_id, kind) WHERE partner_id IS NOT NULL DO UPDATE SET body = EXCLUDED.body, "
               f"updated_by = EXCLUDED.updated_by RETURNING {COLUMNS}")
        row = await conn.fetchrow(sql, partner_id, kind, body, by)
    assert row is not None
    return row


async def delete(conn: Connection, partner_id: int | None, kind: str) -> asyncpg.Record | None:
    """Delete the (partner, kind) template; the row it was, or None when there was none."""
    return await conn.fetchrow(f"DELETE FROM document_templates WHERE partner_id IS NOT DISTINCT FROM $1 "
                               f"AND kind = $2 RETURNING {COLUMNS}", partner_id, kind)


async def partner_name(conn: Connection, partner_id: int) -> str | None:
    name: str | None = await conn.fetchval("SELECT name FROM partners WHERE id = $1", partner_id)
    return name
