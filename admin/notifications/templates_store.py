"""The SQL of the message template editor (templates_page.py): operators' templates
(message_templates), one body per (partner, kind, channel, language), partner NULL for the
default of every partner, language '' for any. A message uses the first of: its partner's in the
customer's language, its partner's for any language, the default in that language, the default
for any language, else the built-in (admin/notifications/templates.py); store.py reads it so
when a message is sent. Not financial: a template is replaced and deleted in place.
"""

from __future__ import annotations

import asyncpg

from admin.auth.store import Connection

COLUMNS = "id, partner_id, kind, channel, language, body, updated_by, updated_at"


async def templates(conn: Connection, partner_id: int | None) -> list[asyncpg.Record]:
    """The default rows and, for a partner, its own (every kind, channel and language)."""
    return await conn.fetch(f"SELECT {COLUMNS} FROM message_templates WHERE partner_id IS NULL OR partner_id = $1 "
                            "ORDER BY kind, channel, language, partner_id NULLS FIRST", partner_id)


async def save(conn: Connection, partner_id: int | None, kind: str, channel: str, language: str, body: str,
               by: str) -> asyncpg.Record:
    """Insert or replace the (partner, kind, channel, language) template."""
    if partner_id is None:
        row = await conn.fetchrow(
            "INSERT INTO message_templates (partner_id, kind, channel, language, body, updated_by) "
            "VALUES (NULL, $1, $2, $3, $4, $5) ON CONFLICT (kind, channel, language) WHERE partner_id IS NULL "
            f"DO UPDATE SET body = EXCLUDED.body, updated_by = EXCLUDED.updated_by RETURNING {COLUMNS}",
            kind, channel, language, body, by)
    else:
        row = await conn.fetchrow(
            "INSERT INTO message_templates (partner_id, kind, channel, language, body, updated_by) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (partner_id, kind, channel, language) "
            "WHERE partner_id IS NOT NULL "
            f"DO UPDATE SET body = EXCLUDED.body, updated_by = EXCLUDED.updated_by RETURNING {COLUMNS}",
            partner_id, kind, channel, language, body, by)
    assert row is not None
    return row


async def delete(conn: Connection, partner_id: int | None, kind: str, channel: str,
                 language: str) -> asyncpg.Record | None:
    """Delete the (partner, kind, channel, language) template; the row it was, or None."""
    return await conn.fetchrow(f"DELETE FROM message_templates WHERE partner_id IS NOT DISTINCT FROM $1 "
                               f"AND kind = $2 AND channel = $3 AND language = $4 RETURNING {COLUMNS}",
                               partner_id, kind, channel, language)


async def partner_name(conn: Connection, partner_id: int) -> str | None:
    name: str | None = await conn.fetchval("SELECT name FROM partners WHERE id = $1", partner_id)
    return name


async def rule_subject(conn: Connection, partner_id: int | None, kind: str) -> str:
    """The subject the notice rule of ``kind`` gives its messages (the partner's rule, else the
    default one): '' when none does (the kind's default subject)."""
    subject: str | None = await conn.fetchval(
        "SELECT subject FROM notice_rules WHERE kind = $2 AND (partner_id = $1 OR partner_id IS NULL) "
        "ORDER BY partner_id NULLS LAST LIMIT 1", partner_id, kind)
    return subject or ""
